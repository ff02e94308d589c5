import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../db/client';
import { createTestApi, type TestApi } from '../../testing';
import { projectWith, settled } from './testing';

let t: TestApi;
beforeAll(async () => {
  t = await createTestApi({}, { mockChunkDelayMs: 0 });
});
afterAll(() => t.close());

describe('runs.start with an idempotency key', () => {
  it('20 concurrent starts answer one run, recorded once', async () => {
    const { c, projectId } = await projectWith(t, 'Idempotent Starts');
    const agent = await c.agents.create({
      projectId,
      name: 'Echo',
      instructions: 'Echo.',
      model: 'mock-echo',
    });
    const start = () => c.runs.start({ agentId: agent.id, input: 'go', idempotencyKey: 'job-1' });
    const results = await Promise.allSettled(Array.from({ length: 20 }, start));
    const failed = results.flatMap((r) =>
      r.status === 'rejected' ? [String(r.reason).slice(0, 80)] : [],
    );
    expect(failed).toEqual([]);
    const runs = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    // The status moves on as the worker runs it; what was recorded is the same for all.
    const recorded = runs.map((r) => ({ id: r.id, input: r.input, createdAt: r.createdAt }));
    for (const r of recorded) expect(r).toEqual(recorded[0]);
    const rows = rowsOf(
      await t.api.database.db.execute(
        sql`select 1 from runs where project_id = ${projectId} and idempotency_key = 'job-1'`,
      ),
    );
    expect(rows).toHaveLength(1);
    expect((await settled(c, runs[0]?.id ?? '')).status).toBe('succeeded');
    // A retry after it finished still answers it, and starts nothing.
    expect((await start()).id).toBe(runs[0]?.id);
    expect((await c.runs.list({ projectId })).items).toHaveLength(1);
  });

  it('does not wait on advisory locks: a key cannot make starts hang behind other work', async () => {
    const { c, projectId } = await projectWith(t, 'Lock Free Starts');
    const agent = await c.agents.create({
      projectId,
      name: 'Echo',
      instructions: 'Echo.',
      model: 'mock-echo',
    });
    const key = 'collides-with-a-lock';
    // Any session-level lock whose key equals the one a start would take (the deposit
    // watcher's, the migrations'): a chosen key could hash onto one of them.
    const [hash] = rowsOf<{ h: number }>(
      await t.api.database.db.execute(sql`select hashtext(${`run:${projectId}:${key}`}) as h`),
    );
    const lock = await t.api.database.tryAdvisoryLock(hash?.h ?? 0);
    if (!lock) throw new Error('lock not taken');
    try {
      const started = c.runs.start({ agentId: agent.id, input: 'go', idempotencyKey: key });
      const answer = await Promise.race([
        started,
        new Promise<'blocked'>((resolve) => setTimeout(() => resolve('blocked'), 3000)),
      ]);
      expect(answer).toMatchObject({ projectId, idempotencyKey: key });
      await started;
    } finally {
      await lock.release();
    }
  });
});
