import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FakeAnthropic } from '../../ai/testing/fake-anthropic';
import { failure, type TestApi } from '../../testing';
import { runs } from './runs.table';
import { events, MODEL, projectWith, settled, startWithFakeAnthropic } from './testing';

let fake: FakeAnthropic;
let t: TestApi;
let close: () => Promise<void>;
beforeAll(async () => {
  ({ fake, t, close } = await startWithFakeAnthropic({
    RUNS_MAX_CONCURRENT_PER_PROJECT: '1',
    // Haiku at 1000 micro-USDC per output token, free input: easy budgets.
    MODEL_PRICES: JSON.stringify({ 'claude-haiku-4-5': { input: '0', output: '1000' } }),
  }));
});
afterAll(() => close());
beforeEach(() => fake.reset());

describe('runs under limits', () => {
  it('a budget exhausted mid-run fails it with budget.exceeded after the affordable steps', async () => {
    const { c, projectId } = await projectWith(t, 'Budget Run');
    const agent = await c.agents.create({
      projectId,
      name: 'Spender',
      instructions: 'x',
      model: MODEL,
      tools: ['current_time'],
    });
    // Output capped at 10 tokens: each step holds 0.01 USDC; the budget covers one step.
    await c.policies.update({ projectId, maxOutputTokens: 10 });
    await c.budgets.setLimit({ projectId, scope: 'project', period: 'total', amount: '0.015' });
    fake.script({
      kind: 'tool-use',
      calls: [{ name: 'current_time', input: {} }],
      outputTokens: 10,
    });
    const run = await settled(c, (await c.runs.start({ agentId: agent.id, input: 'go' })).id);
    expect(run).toMatchObject({ status: 'failed', error: { appCode: 'budget.exceeded' } });
    expect(run.steps.map((s) => s.kind)).toEqual(['model', 'tool']);
    expect(run.cost).toBe('0.010000');
    expect(fake.requests).toHaveLength(1);
  });

  it('at most RUNS_MAX_CONCURRENT_PER_PROJECT run at once; the rest wait queued', async () => {
    const { c, projectId } = await projectWith(t, 'Queue');
    const agent = await c.agents.create({
      projectId,
      name: 'Slow',
      instructions: 'x',
      model: MODEL,
    });
    fake.script({ kind: 'hang' }, { kind: 'reply', chunks: ['second'] });
    const first = await c.runs.start({ agentId: agent.id, input: 'one' });
    await expect.poll(async () => (await c.runs.get({ runId: first.id })).status).toBe('running');
    const second = await c.runs.start({ agentId: agent.id, input: 'two' });
    await new Promise((r) => setTimeout(r, 300));
    expect((await c.runs.get({ runId: second.id })).status).toBe('queued');
    await c.runs.cancel({ runId: first.id });
    const done = await settled(c, second.id);
    expect(done).toMatchObject({ status: 'succeeded', output: 'second' });
  });

  it('cancelling a queued run ends it without running it', async () => {
    const { c, projectId } = await projectWith(t, 'Queued Cancel');
    const agent = await c.agents.create({
      projectId,
      name: 'Slow',
      instructions: 'x',
      model: MODEL,
    });
    fake.script({ kind: 'hang' });
    const first = await c.runs.start({ agentId: agent.id, input: 'one' });
    await expect.poll(async () => (await c.runs.get({ runId: first.id })).status).toBe('running');
    const second = await c.runs.start({ agentId: agent.id, input: 'two' });
    expect((await c.runs.cancel({ runId: second.id })).status).toBe('cancelled');
    expect((await events(t, second.id)).map((e) => e.type)).toEqual(['run.cancelled']);
    await c.runs.cancel({ runId: first.id });
    await settled(c, first.id);
  });
});

describe('restart recovery', () => {
  it('a run left running by a dead process resumes from its last completed step', async () => {
    const { c, projectId, owner } = await projectWith(t, 'Resume');
    const agent = await c.agents.create({
      projectId,
      name: 'Resumer',
      instructions: 'resume-me',
      model: MODEL,
      tools: ['current_time'],
    });
    // What a killed worker leaves: running, stale heartbeat, one tool exchange in the transcript.
    const [row] = await t.api.deps.db
      .insert(runs)
      .values({
        projectId,
        agentId: agent.id,
        activeAgentId: agent.id,
        input: 'go',
        status: 'running',
        createdBy: owner.user.id,
        heartbeatAt: new Date(Date.now() - 120_000),
        startedAt: new Date(Date.now() - 130_000),
        transcript: [
          { role: 'user', content: 'go' },
          {
            role: 'assistant',
            content: [{ type: 'tool_use', id: 'toolu_1', name: 'current_time', input: {} }],
          },
          {
            role: 'user',
            content: [{ type: 'tool_result', toolUseId: 'toolu_1', content: '{"iso":"x"}' }],
          },
        ],
      })
      .returning();
    if (!row) throw new Error('no row');
    fake.script({ kind: 'reply', chunks: ['resumed'] });
    expect(await t.api.deps.runner.sweep()).toBe(1);
    const run = await settled(c, row.id);
    expect(run).toMatchObject({ status: 'succeeded', output: 'resumed' });
    // The model got the saved transcript, tool exchange included: nothing was redone.
    // Only this run's requests (an earlier test's cancelled request may still be recorded).
    const mine = fake.requests.filter((r) => JSON.stringify(r.system).includes('resume-me'));
    expect(mine).toHaveLength(1);
    expect(JSON.stringify(mine[0]?.messages)).toContain('toolu_1');
  });

  it('a run interrupted too often is failed with a clear reason', async () => {
    const { c, projectId } = await projectWith(t, 'Crashy');
    const agent = await c.agents.create({
      projectId,
      name: 'Crashy',
      instructions: 'x',
      model: MODEL,
    });
    const [row] = await t.api.deps.db
      .insert(runs)
      .values({
        projectId,
        agentId: agent.id,
        activeAgentId: agent.id,
        input: 'go',
        status: 'running',
        resumes: 2,
        heartbeatAt: new Date(Date.now() - 120_000),
        transcript: [{ role: 'user', content: 'go' }],
      })
      .returning();
    if (!row) throw new Error('no row');
    await t.api.deps.runner.sweep();
    const run = await c.runs.get({ runId: row.id });
    expect(run).toMatchObject({ status: 'failed', error: { appCode: 'run.interrupted' } });
    const [stored] = await t.api.deps.db.select().from(runs).where(eq(runs.id, row.id));
    expect(stored?.heartbeatAt).toBeNull();
  });
});

describe('progress subscription', () => {
  it('resuming from lastEventId yields exactly the remaining events', async () => {
    const { c, projectId } = await projectWith(t, 'Progress');
    const agent = await c.agents.create({
      projectId,
      name: 'Talker',
      instructions: 'x',
      model: MODEL,
    });
    fake.script({ kind: 'reply', chunks: ['a', 'b', 'c'] });
    const run = await settled(c, (await c.runs.start({ agentId: agent.id, input: 'go' })).id);
    const all = await t.api.deps.bus.readAfter(`run:${run.id}`, 0, 100);
    const middle = all[2];
    if (!middle) throw new Error('too few events');
    // Signed out: refused before any event is read.
    expect((await failure(t.caller(null).runs.onProgress({ runId: run.id }))).code).toBe(
      'UNAUTHORIZED',
    );
    const member = (await c.runs.onProgress({
      runId: run.id,
      lastEventId: String(middle.id),
    })) as AsyncIterable<[string, { type: string }]>;
    const seen: string[] = [];
    for await (const [id, event] of member) {
      seen.push(id);
      if (event.type === 'run.completed') break;
    }
    expect(seen).toEqual(all.slice(3).map((e) => String(e.id)));
  });
});
