import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApi, queryRows, sql, type TestApi } from '../../testing';
import type { GroupBy } from './usage.dto';
import { type FinishedRequest, recordFinished, spentThisMonth, summary } from './usage.service';
import { apiRequests } from './usage.table';

/**
 * usage.summary reads whole days from usage_daily and the partial days at a range's ends from
 * the calls: whatever the range and grouping, it must answer exactly what summing the calls
 * themselves answers. Calls are written the way the gateway writes them (recordFinished, the
 * sweeper), spread over several days.
 */
let t: TestApi;
beforeAll(async () => {
  t = await createTestApi();
});
afterAll(() => t.close());

const HOUR = 3_600_000;
const BASE = Date.UTC(2026, 9, 10); // 2026-10-10T00:00Z

function call(projectId: string, at: number, i: number): FinishedRequest {
  return {
    id: randomUUID(),
    project_id: projectId,
    user_id: i % 3 === 0 ? null : `00000000-0000-4000-8000-00000000000${i % 3}`,
    key_id: i % 4 === 0 ? '00000000-0000-4000-8000-0000000000a1' : null,
    agent_id: i % 5 === 0 ? '00000000-0000-4000-8000-0000000000b1' : null,
    run_id: null,
    conversation_id: null,
    source: 'api',
    model: i % 2 ? 'mock-echo' : 'claude-test',
    status: i % 7 === 0 ? 'denied' : 'succeeded',
    error_code: null,
    input_tokens: 1_000_000 + i,
    output_tokens: 2 * i,
    cache_write_tokens: i % 2,
    cache_read_tokens: i % 3,
    cost: String(1000 + i),
    latency_ms: 5,
    created_at: new Date(at).toISOString(),
  };
}

/** What summing the finished calls themselves answers. */
async function fromCalls(projectId: string, from: Date, to: Date, groupBy: GroupBy) {
  const key = {
    day: sql`to_char(created_at at time zone 'UTC', 'YYYY-MM-DD')`,
    model: sql`model`,
    agent: sql`agent_id::text`,
    member: sql`user_id::text`,
    key: sql`key_id::text`,
  }[groupBy];
  const rows = await queryRows<Record<string, string | null>>(
    t.api.deps.db,
    sql`select ${key} as key, count(*)::text as requests, sum(input_tokens)::text as i,
        sum(output_tokens)::text as o, sum(cache_write_tokens)::text as w,
        sum(cache_read_tokens)::text as r, sum(cost)::text as cost
      from ${apiRequests}
      where project_id = ${projectId} and status <> 'in_progress'
        and created_at >= ${from.toISOString()}::timestamptz
        and created_at < ${to.toISOString()}::timestamptz
      group by 1 order by 1 nulls last`,
  );
  return rows.map((r) => ({
    key: r.key ?? null,
    requests: Number(r.requests),
    inputTokens: Number(r.i),
    outputTokens: Number(r.o),
    cacheWriteTokens: Number(r.w),
    cacheReadTokens: Number(r.r),
    cost: (Number(r.cost) / 1_000_000).toFixed(6),
  }));
}

describe('usage.summary from the daily rollup', () => {
  it('answers exactly what the calls sum to, for whole days, partial ends and every grouping', async () => {
    const owner = await t.signUp('Usage');
    const { id: projectId } = await t.caller(owner.accessToken).projects.create({ name: 'U' });
    // 4 days of calls every 5 hours (so every day has calls on both sides of any hour), in
    // three batches as settlements come.
    const calls = Array.from({ length: 20 }, (_, i) => call(projectId, BASE + i * 5 * HOUR, i));
    for (const batch of [calls.slice(0, 7), calls.slice(7, 15), calls.slice(15)]) {
      expect(await recordFinished(t.api.deps.db, batch)).toBe(batch.length);
    }
    // Written again (a retry, or a row already finished): counted once.
    expect(await recordFinished(t.api.deps.db, calls.slice(0, 2))).toBe(0);
    // A call still in progress is not counted; once the sweeper marks it interrupted, it is.
    const stuck = randomUUID();
    await t.api.deps.db.insert(apiRequests).values({
      id: stuck,
      projectId,
      userId: null,
      source: 'api',
      model: 'mock-echo',
      status: 'in_progress',
      createdAt: new Date(BASE + 26 * HOUR),
      heartbeatAt: new Date(Date.now() - 3_600_000),
    });

    const ranges: Array<[number, number]> = [
      [BASE, BASE + 4 * 24 * HOUR], // whole days only
      [BASE + 3 * HOUR, BASE + 70 * HOUR], // partial at both ends
      [BASE + 26 * HOUR, BASE + 30 * HOUR], // inside one day
      [BASE - 24 * HOUR, BASE + 365 * 24 * HOUR], // a year, most of it empty
      [BASE + 24 * HOUR, BASE + 49 * HOUR + 1], // one whole day and a millisecond past the next
    ];
    const check = async () => {
      for (const [a, b] of ranges) {
        for (const groupBy of ['day', 'model', 'agent', 'member', 'key'] as const) {
          const from = new Date(a);
          const to = new Date(b);
          const got = await summary({ db: t.api.deps.db, projectId, from, to, groupBy });
          expect(got, `${from.toISOString()}..${to.toISOString()} by ${groupBy}`).toEqual(
            await fromCalls(projectId, from, to, groupBy),
          );
        }
      }
    };
    await check();
    expect(await t.api.deps.gateway.sweep()).toBeGreaterThanOrEqual(1);
    const [row] = await queryRows<{ status: string }>(
      t.api.deps.db,
      sql`select status from ${apiRequests} where id = ${stuck}`,
    );
    expect(row?.status).toBe('failed');
    await check();
    // Token sums past 2^31 (int overflowed before).
    const [all] = await summary({
      db: t.api.deps.db,
      projectId,
      from: new Date(BASE - HOUR),
      to: new Date(BASE + 5 * 24 * HOUR),
      groupBy: 'model',
    });
    expect(all?.inputTokens).toBeGreaterThan(2 ** 23);
  });

  it('through the router, from gateway calls and denials as they happen; spend this month', async () => {
    const prices = JSON.stringify({ 'mock-echo': { input: '0', output: '1000' } });
    const api = await createTestApi({ MODEL_PRICES: prices }, { mockChunkDelayMs: 0 });
    try {
      const owner = await api.signUp('Live');
      const c = api.caller(owner.accessToken);
      const { id: projectId } = await c.projects.create({ name: 'Live' });
      await c.policies.update({ projectId, maxOutputTokens: 2 });
      await c.budgets.setLimit({ projectId, scope: 'project', period: 'total', amount: '0.006' });
      const call = async () => {
        for await (const _ of api.api.deps.gateway.stream({
          projectId,
          userId: owner.user.id,
          source: 'chat',
          model: 'mock-echo',
          messages: [{ role: 'user', content: 'go' }],
          maxOutputTokens: 2,
        })) {
          // Drained.
        }
      };
      for (let i = 0; i < 3; i++) await call();
      await expect(call()).rejects.toMatchObject({ code: 'budget.exceeded' });
      const now = new Date();
      const byModel = await c.usage.summary({
        projectId,
        from: new Date(now.getTime() - HOUR).toISOString(),
        to: new Date(now.getTime() + HOUR).toISOString(),
        groupBy: 'model',
      });
      // The three calls and the denied one.
      expect(byModel).toEqual([
        expect.objectContaining({
          key: 'mock-echo',
          requests: 4,
          outputTokens: 6,
          cost: '0.006000',
        }),
      ]);
      expect(await spentThisMonth(api.api.deps.db, projectId)).toBe(6000n);
      expect((await c.budgets.get({ projectId })).spentThisPeriod).toBe('0.006000');
    } finally {
      await api.close();
    }
  });
});
