import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApi, type TestApi } from '../../testing';
import { ledgerTotal } from '../billing/billing.service';
import { ledgerEntries, projectBalances } from '../billing/billing.table';
import { budgetAlerts, budgetUsage } from '../budgets/budgets.table';
import { apiRequestHolds, apiRequests } from '../usage/usage.table';
import { groupCommit, type ReserveItem, reserveBatch, type SettleItem, settleBatch } from './books';

/**
 * The group-commit books on their own: admission order inside one batch, all-or-nothing
 * holds per call, settlement once, thresholds once, balance charges capped. The gateway's
 * own tests (gateway.test.ts, the multi-instance ones) cover them under real concurrency.
 */

describe('groupCommit', () => {
  it('writes one item at once, and what queues meanwhile in one batch; a failure fails its batch only', async () => {
    const batches: number[][] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const write = groupCommit(async (items: number[]) => {
      batches.push(items);
      if (batches.length === 1) await gate;
      if (items.includes(13)) throw new Error('unlucky batch');
      return items.map((i) => i * 2);
    });
    const first = write(1);
    const rest = [2, 3, 13, 4].map((i) => write(i));
    release();
    expect(await first).toBe(2);
    const settled = await Promise.allSettled(rest);
    expect(batches).toEqual([[1], [2, 3, 13, 4]]);
    expect(settled.every((s) => s.status === 'rejected')).toBe(true);
    // The queue keeps working after a failed batch.
    expect(await write(5)).toBe(10);
    expect(batches.at(-1)).toEqual([5]);
  });

  it('caps a batch at maxBatch items', async () => {
    const sizes: number[] = [];
    const write = groupCommit(async (items: number[]) => {
      sizes.push(items.length);
      await new Promise((r) => setTimeout(r, 5));
      return items;
    }, 3);
    await Promise.all(Array.from({ length: 8 }, (_, i) => write(i)));
    expect(sizes).toEqual([1, 3, 3, 1]);
  });
});

describe('reserveBatch and settleBatch', () => {
  let t: TestApi;
  beforeAll(async () => {
    t = await createTestApi();
  });
  afterAll(() => t.close());

  async function project(name: string) {
    const owner = await t.signUp(name);
    const c = t.caller(owner.accessToken);
    const { id } = await c.projects.create({ name });
    return { owner, c, projectId: id };
  }

  const item = (
    projectId: string,
    userId: string,
    worst: bigint,
    holdBalance = false,
    keyId: string | null = null,
  ): ReserveItem => ({
    columns: {
      projectId,
      userId,
      keyId,
      agentId: null,
      runId: null,
      conversationId: null,
      source: 'api',
      model: 'mock-echo',
    },
    worst,
    holdBalance,
  });

  const settleItem = (
    r: { requestId: string; holds: SettleItem['holds']; balanceHold: bigint },
    projectId: string,
    cost: bigint,
    charge = 0n,
  ): SettleItem => ({
    requestId: r.requestId,
    projectId,
    model: 'mock-echo',
    holds: r.holds,
    balanceHold: r.balanceHold,
    charge,
    cost,
    status: 'succeeded',
    errorCode: null,
    inputTokens: 1,
    outputTokens: 2,
    cacheWriteTokens: 0,
    cacheReadTokens: 0,
    latencyMs: 3,
  });

  it('admits calls in arrival order against what is left: a later, smaller call may fit', async () => {
    const { owner, c, projectId } = await project('Order');
    const limit = await c.budgets.setLimit({
      projectId,
      scope: 'project',
      period: 'day',
      amount: '0.010',
    });
    const u = owner.user.id;
    const results = await reserveBatch(t.api.deps.db, [
      item(projectId, u, 4000n),
      item(projectId, u, 4000n),
      item(projectId, u, 4000n),
      item(projectId, u, 2000n),
    ]);
    expect(results.map((r) => (r.ok ? 'ok' : r.error.code))).toEqual([
      'ok',
      'ok',
      'budget.exceeded',
      'ok',
    ]);
    const [usage] = await t.api.deps.db
      .select()
      .from(budgetUsage)
      .where(eq(budgetUsage.limitId, limit.id));
    expect(usage).toMatchObject({ spent: 0n, reserved: 10_000n });
    const rows = await t.api.deps.db
      .select()
      .from(apiRequests)
      .where(eq(apiRequests.projectId, projectId));
    expect(rows.map((r) => r.status).sort()).toEqual(['in_progress', 'in_progress', 'in_progress']);
    expect(rows.reduce((s, r) => s + r.reserved, 0n)).toBe(10_000n);
  });

  it('takes nothing from any limit when one of a call’s limits refuses', async () => {
    const { owner, c, projectId } = await project('All or nothing');
    const u = owner.user.id;
    const wide = await c.budgets.setLimit({
      projectId,
      scope: 'project',
      period: 'month',
      amount: '1',
    });
    const narrow = await c.budgets.setLimit({
      projectId,
      scope: 'member',
      scopeId: u,
      period: 'day',
      amount: '0.003',
    });
    const results = await reserveBatch(t.api.deps.db, [
      item(projectId, u, 2000n),
      item(projectId, u, 2000n),
    ]);
    expect(results.map((r) => r.ok)).toEqual([true, false]);
    const usage = await t.api.deps.db.select().from(budgetUsage);
    const of = (id: string) => usage.find((x) => x.limitId === id)?.reserved;
    expect(of(wide.id)).toBe(2000n);
    expect(of(narrow.id)).toBe(2000n);
    const first = results[0];
    if (!first?.ok) throw new Error('expected a reservation');
    const holds = await t.api.deps.db
      .select()
      .from(apiRequestHolds)
      .where(eq(apiRequestHolds.requestId, first.requestId));
    expect(holds.map((h) => h.limitId).sort()).toEqual([wide.id, narrow.id].sort());
  });

  it('settles each call once, fires each threshold once for a batch, and caps balance charges', async () => {
    const { owner, c, projectId } = await project('Settle');
    const u = owner.user.id;
    const limit = await c.budgets.setLimit({
      projectId,
      scope: 'project',
      period: 'day',
      amount: '0.010',
      alertAt: [0.5, 0.8],
    });
    await t.api.deps.db.insert(projectBalances).values({ projectId, balance: 7000n });
    const reserved = await reserveBatch(t.api.deps.db, [
      item(projectId, u, 3000n, true),
      item(projectId, u, 3000n, true),
    ]);
    const [a, b] = reserved;
    if (!(a?.ok && b?.ok)) throw new Error('expected two reservations');
    // The second call cost more than its hold: the balance pays what it has left.
    const batch = [settleItem(a, projectId, 3000n, 3000n), settleItem(b, projectId, 5000n, 5000n)];
    const results = await settleBatch(t.api.deps.db, t.api.deps.bus, batch);
    expect(results.flat().map((r) => r.alert.threshold)).toEqual([0.5, 0.8]);
    const again = await settleBatch(t.api.deps.db, t.api.deps.bus, batch);
    expect(again.flat()).toEqual([]);

    const [usage] = await t.api.deps.db
      .select()
      .from(budgetUsage)
      .where(eq(budgetUsage.limitId, limit.id));
    expect(usage).toMatchObject({ spent: 8000n, reserved: 0n });
    const alerts = await t.api.deps.db
      .select()
      .from(budgetAlerts)
      .where(eq(budgetAlerts.limitId, limit.id));
    expect(alerts.map((x) => x.threshold).sort()).toEqual([0.5, 0.8]);
    const [balance] = await t.api.deps.db
      .select()
      .from(projectBalances)
      .where(eq(projectBalances.projectId, projectId));
    expect(balance).toMatchObject({ balance: 0n, reserved: 0n });
    const entries = await t.api.deps.db
      .select()
      .from(ledgerEntries)
      .where(eq(ledgerEntries.projectId, projectId));
    expect(entries.map((e) => Number(e.amount)).sort((x, y) => x - y)).toEqual([-4000, -3000]);
    expect(entries.find((e) => e.amount === -4000n)?.metadata).toMatchObject({
      cost: '0.005000',
      uncollected: '0.001000',
    });
    // The ledger's entries are the charges; the seeded balance had no entry of its own.
    expect(await ledgerTotal(t.api.deps.db, projectId)).toBe(-7000n);
    const rows = await t.api.deps.db
      .select()
      .from(apiRequests)
      .where(eq(apiRequests.projectId, projectId));
    expect(rows.map((r) => [r.status, r.reserved])).toEqual([
      ['succeeded', 0n],
      ['succeeded', 0n],
    ]);
  });

  it('leaves a call the sweeper already released alone', async () => {
    const { owner, c, projectId } = await project('Swept');
    const limit = await c.budgets.setLimit({
      projectId,
      scope: 'project',
      period: 'day',
      amount: '1',
    });
    const [r] = await reserveBatch(t.api.deps.db, [item(projectId, owner.user.id, 5000n)]);
    if (!r?.ok) throw new Error('expected a reservation');
    await t.api.deps.db
      .update(apiRequests)
      .set({ heartbeatAt: new Date(Date.now() - 3_600_000) })
      .where(eq(apiRequests.id, r.requestId));
    expect(await t.api.deps.gateway.sweep()).toBeGreaterThanOrEqual(1);
    await settleBatch(t.api.deps.db, t.api.deps.bus, [settleItem(r, projectId, 5000n)]);
    const [usage] = await t.api.deps.db
      .select()
      .from(budgetUsage)
      .where(eq(budgetUsage.limitId, limit.id));
    expect(usage).toMatchObject({ spent: 0n, reserved: 0n });
    const [row] = await t.api.deps.db
      .select()
      .from(apiRequests)
      .where(eq(apiRequests.id, r.requestId));
    expect(row).toMatchObject({ status: 'failed', errorCode: 'gateway.interrupted', cost: 0n });
  });
});
