import { randomUUID } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Api, createApi, createCaller } from '../../index';
import { AppError } from '../../lib/errors';
import { createTestDatabase, type TestDatabase, testConfig } from '../../testing';
import { ledgerTotal } from '../billing/billing.service';
import { ledgerEntries, projectBalances } from '../billing/billing.table';
import { budgetAlerts, budgetUsage } from '../budgets/budgets.table';
import { apiRequests } from '../usage/usage.table';
import {
  type Admission,
  type CallColumns,
  catchUpAlerts,
  createLeases,
  type Leases,
  sweepLeases,
} from './leases';
import { gatewayLeases } from './leases.table';

/**
 * Budget leases (leases.ts) on a real database, as the gateway uses them: admission order
 * and all-or-nothing holds, settlement, thresholds and balance charges; and the invariants
 * the leases could break: never more spent than a budget allows, with two instances
 * admitting at once, after one of them dies holding a lease, after a limit is lowered; and
 * nothing left reserved once the leases go back (idle, close, sweeper).
 */

let database: TestDatabase;
let api: Api;
const open: Leases[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  api = await createApi({ config: testConfig(), database, migrate: false });
});
afterAll(async () => {
  for (const l of open) await l.stop();
  await api?.close();
  await database?.close();
});

/** One "instance": a lease manager of its own on the shared database. */
function instance(
  opts: { calls?: number; idleMs?: number; staleMs?: number; listen?: boolean } = {},
) {
  const leases = createLeases({
    db: database.db,
    bus: api.deps.bus,
    log: api.deps.log,
    calls: opts.calls ?? 1,
    idleMs: opts.idleMs ?? 60_000,
    staleMs: opts.staleMs ?? 60_000,
    listen: opts.listen ? database.listen.bind(database) : undefined,
  });
  open.push(leases);
  return leases;
}

async function project(name: string) {
  const caller = (token: string | null) =>
    createCaller(api.createContext({ token, ip: '127.0.0.1', requestId: randomUUID() }));
  const owner = await caller(null).auth.register({
    email: `${name.toLowerCase().replace(/\W+/g, '.')}.${randomUUID().slice(0, 8)}@example.com`,
    password: 'correct horse battery staple',
    name,
  });
  const c = caller(owner.accessToken);
  const { id } = await c.projects.create({ name });
  return { c, projectId: id, userId: owner.user.id };
}

/** A project-wide daily limit of `amount` USDC. */
function projectLimit(
  c: Awaited<ReturnType<typeof project>>['c'],
  projectId: string,
  amount: string,
) {
  return c.budgets.setLimit({ projectId, scope: 'project', period: 'day', amount });
}

const columns = (projectId: string, userId: string): CallColumns => ({
  projectId,
  userId,
  keyId: null,
  agentId: null,
  runId: null,
  conversationId: null,
  source: 'api',
  model: 'mock-echo',
});

/** Settles an admitted call that cost `cost` (charged to the balance when `charge`). */
function finish(leases: Leases, a: Admission, cost: bigint, charge = 0n) {
  return leases.settle({
    admission: a,
    columns: { ...columns(a.lease.projectId, ''), userId: null },
    startedAt: new Date(),
    status: 'succeeded',
    errorCode: null,
    inputTokens: 1,
    outputTokens: 2,
    cacheWriteTokens: 0,
    cacheReadTokens: 0,
    cost,
    charge,
    latencyMs: 3,
  });
}

const code = (e: unknown) => (e instanceof AppError ? e.code : String(e));

async function usageOf(limitId: string) {
  const rows = await database.db.select().from(budgetUsage).where(eq(budgetUsage.limitId, limitId));
  return rows.reduce((s, r) => ({ spent: s.spent + r.spent, reserved: s.reserved + r.reserved }), {
    spent: 0n,
    reserved: 0n,
  });
}

async function balanceOf(projectId: string) {
  const [row] = await database.db
    .select({ balance: projectBalances.balance, reserved: projectBalances.reserved })
    .from(projectBalances)
    .where(eq(projectBalances.projectId, projectId));
  return row;
}

/**
 * A call admitted and settled at `cost` (its worst case), charged to the balance when
 * `prepaid`; 'refused' when the budget or balance says no.
 */
async function spend(
  leases: Leases,
  projectId: string,
  userId: string,
  cost: bigint,
  prepaid = false,
) {
  try {
    const a = await leases.admit(columns(projectId, userId), cost, prepaid);
    await finish(leases, a, cost, prepaid ? cost : 0n);
    return 'ok' as const;
  } catch (e) {
    if (code(e) === 'budget.exceeded' || code(e) === 'balance.insufficient')
      return 'refused' as const;
    throw e;
  }
}

describe('admission', () => {
  it('admits calls in arrival order against what is left: a later, smaller call may fit', async () => {
    const { c, projectId, userId } = await project('Order');
    const limit = await projectLimit(c, projectId, '0.010');
    const leases = instance({ calls: 32 });
    const worst = [4000n, 4000n, 4000n, 2000n];
    const results = await Promise.allSettled(
      worst.map((w) => leases.admit(columns(projectId, userId), w, false)),
    );
    expect(results.map((r) => (r.status === 'fulfilled' ? 'ok' : code(r.reason)))).toEqual([
      'ok',
      'ok',
      'budget.exceeded',
      'ok',
    ]);
    // The whole limit is leased now; nothing is spent until the calls settle.
    expect(await usageOf(limit.id)).toEqual({ spent: 0n, reserved: 10_000n });
    const [lease] = await database.db
      .select()
      .from(gatewayLeases)
      .where(eq(gatewayLeases.projectId, projectId));
    expect(lease).toBeDefined();
    // Less than two chunks was left, so each call was granted exactly its worst case (tight):
    // settled below it, the rest goes back at once.
    for (const r of results) if (r.status === 'fulfilled') await finish(leases, r.value, 1000n);
    expect(await usageOf(limit.id)).toEqual({ spent: 3000n, reserved: 0n });
    await leases.releaseIdle();
    expect(await usageOf(limit.id)).toEqual({ spent: 3000n, reserved: 0n });
    expect(
      await database.db.select().from(gatewayLeases).where(eq(gatewayLeases.projectId, projectId)),
    ).toEqual([]);
  });

  it('takes a chunk while the budget is far from its end, then call by call; other instances give theirs back', async () => {
    const { c, projectId, userId } = await project('Chunks');
    // 40 calls of 1000: chunks of 4 calls while at least 8 calls' worth is left.
    const limit = await projectLimit(c, projectId, '0.040');
    const a = instance({ calls: 4, listen: true });
    const b = instance({ calls: 4, listen: true });
    expect(await spend(a, projectId, userId, 1000n)).toBe('ok');
    // A chunk (4 calls' worth) was taken; one call spent, three still leased to `a`.
    expect(await usageOf(limit.id)).toEqual({ spent: 1000n, reserved: 3000n });
    // `b` spends until the budget is near its end and goes call by call; its pressure makes `a`
    // give back what it holds, so every last call of the budget is spent.
    let ok = 1;
    while ((await spend(b, projectId, userId, 1000n)) === 'ok') ok++;
    await expect.poll(async () => (await usageOf(limit.id)).reserved).toBe(0n);
    while ((await spend(b, projectId, userId, 1000n)) === 'ok') ok++;
    expect(ok).toBe(40);
    expect(await usageOf(limit.id)).toEqual({ spent: 40_000n, reserved: 0n });
    await Promise.all([a.releaseIdle(), b.releaseIdle()]);
  });

  it('takes nothing from any limit when one of a call’s limits refuses', async () => {
    const { c, projectId, userId } = await project('All or nothing');
    const wide = await c.budgets.setLimit({
      projectId,
      scope: 'project',
      period: 'month',
      amount: '1',
    });
    const narrow = await c.budgets.setLimit({
      projectId,
      scope: 'member',
      scopeId: userId,
      period: 'day',
      amount: '0.003',
    });
    const leases = instance({ calls: 1 });
    const first = await leases.admit(columns(projectId, userId), 2000n, false);
    await expect(leases.admit(columns(projectId, userId), 2000n, false)).rejects.toMatchObject({
      code: 'budget.exceeded',
      meta: { limitId: narrow.id },
    });
    expect(await usageOf(wide.id)).toEqual({ spent: 0n, reserved: 2000n });
    expect(await usageOf(narrow.id)).toEqual({ spent: 0n, reserved: 2000n });
    await finish(leases, first, 2000n);
    await leases.releaseIdle();
    expect(await usageOf(wide.id)).toEqual({ spent: 2000n, reserved: 0n });
    expect(await usageOf(narrow.id)).toEqual({ spent: 2000n, reserved: 0n });
  });

  it('settles each call once, fires each threshold once, charges the balance with one entry per call', async () => {
    const { c, projectId, userId } = await project('Settle');
    const limit = await c.budgets.setLimit({
      projectId,
      scope: 'project',
      period: 'day',
      amount: '0.010',
      alertAt: [0.5, 0.8],
    });
    await database.db.insert(projectBalances).values({ projectId, balance: 7000n });
    const leases = instance({ calls: 1 });
    const [a, b] = await Promise.all([
      leases.admit(columns(projectId, userId), 3000n, true),
      leases.admit(columns(projectId, userId), 3000n, true),
    ]);
    if (!a || !b) throw new Error('expected two admissions');
    // The second call cost more than its worst case: the balance pays what the lease holds.
    const [ra, rb] = await Promise.all([
      finish(leases, a, 3000n, 3000n),
      finish(leases, b, 5000n, 5000n),
    ]);
    expect([...(ra ?? []), ...(rb ?? [])].map((r) => r.alert.threshold).sort()).toEqual([0.5, 0.8]);
    await leases.releaseIdle();

    expect(await usageOf(limit.id)).toEqual({ spent: 8000n, reserved: 0n });
    const alerts = await database.db
      .select()
      .from(budgetAlerts)
      .where(eq(budgetAlerts.limitId, limit.id));
    expect(alerts.map((x) => x.threshold).sort()).toEqual([0.5, 0.8]);
    expect(await balanceOf(projectId)).toEqual({ balance: 1000n, reserved: 0n });
    const entries = await database.db
      .select()
      .from(ledgerEntries)
      .where(eq(ledgerEntries.projectId, projectId));
    expect(entries.map((e) => e.amount).sort()).toEqual([-3000n, -3000n]);
    expect(entries.map((e) => e.metadata.uncollected).sort()).toEqual(['0.000000', '0.002000']);
    // balance_after follows the order the entries were made in.
    expect(entries.map((e) => e.balanceAfter).sort()).toEqual([1000n, 4000n]);
    expect(await ledgerTotal(database.db, projectId)).toBe(-6000n);
    const rows = await database.db
      .select()
      .from(apiRequests)
      .where(eq(apiRequests.projectId, projectId));
    expect(rows.map((r) => [r.status, r.cost, r.reserved]).sort()).toEqual([
      ['succeeded', 3000n, 0n],
      ['succeeded', 5000n, 0n],
    ]);
  });

  it('refuses a call the balance cannot cover, holding nothing', async () => {
    const { projectId, userId } = await project('Broke');
    await database.db.insert(projectBalances).values({ projectId, balance: 1500n });
    const leases = instance({ calls: 8 });
    await expect(leases.admit(columns(projectId, userId), 2000n, true)).rejects.toMatchObject({
      code: 'balance.insufficient',
    });
    // Its shortfall, as the chunk (8 calls) would be more than half of what is left.
    const a = await leases.admit(columns(projectId, userId), 1000n, true);
    expect(await balanceOf(projectId)).toEqual({ balance: 1500n, reserved: 1000n });
    await finish(leases, a, 1000n, 1000n);
    await leases.releaseIdle();
    expect(await balanceOf(projectId)).toEqual({ balance: 500n, reserved: 0n });
  });
});

describe('alerts a settlement did not live to fire', () => {
  it('the sweeper fires each threshold a spend reached without its alert, once', async () => {
    const { c, projectId, userId } = await project('Missed alert');
    const limit = await c.budgets.setLimit({
      projectId,
      scope: 'project',
      period: 'day',
      amount: '0.010',
      alertAt: [0.5, 0.8, 0.9],
    });
    const leases = instance({ calls: 1 });
    // Settled normally: 0.5 fires with the settlement.
    const a = await leases.admit(columns(projectId, userId), 6000n, false);
    const [fired] = await Promise.all([finish(leases, a, 6000n)]);
    expect(fired.map((x) => x.alert.threshold)).toEqual([0.5]);
    // A settlement whose process died right after its statement: spend at 85%, no alert row.
    await database.db
      .update(budgetUsage)
      .set({ spent: 8500n })
      .where(eq(budgetUsage.limitId, limit.id));
    const seen: number[] = [];
    const stop = api.deps.bus.listen(`budget:${projectId}`, (e) => {
      seen.push((e.payload as { threshold: number }).threshold);
    });
    try {
      expect((await catchUpAlerts(database.db, api.deps.bus)).map((x) => x.alert)).toEqual([
        { limitId: limit.id, threshold: 0.8, spent: '0.008500', amount: '0.010000' },
      ]);
      // Once: the alert row is its key.
      expect(await catchUpAlerts(database.db, api.deps.bus)).toEqual([]);
      await expect.poll(() => seen).toEqual([0.8]);
    } finally {
      stop();
    }
    const alerts = await database.db
      .select()
      .from(budgetAlerts)
      .where(eq(budgetAlerts.limitId, limit.id));
    expect(alerts.map((x) => x.threshold).sort()).toEqual([0.5, 0.8]);
    await leases.releaseIdle();
  });
});

describe('never more than the budget', () => {
  it('two instances admitting 200 calls at once on one budget: at most what it affords, all of it usable', async () => {
    const { c, projectId, userId } = await project('Two instances');
    const limit = await projectLimit(c, projectId, '0.020');
    const a = instance({ calls: 4 });
    const b = instance({ calls: 4 });
    const outcomes = await Promise.all(
      Array.from({ length: 200 }, (_, i) => spend(i % 2 ? a : b, projectId, userId, 1000n)),
    );
    const ok = outcomes.filter((o) => o === 'ok').length;
    expect(ok).toBeLessThanOrEqual(20);
    expect((await usageOf(limit.id)).spent).toBe(BigInt(ok) * 1000n);
    await Promise.all([a.releaseIdle(), b.releaseIdle()]);
    expect(await usageOf(limit.id)).toEqual({ spent: BigInt(ok) * 1000n, reserved: 0n });
    // What either instance held in advance is all usable once it went back.
    let more = 0;
    while ((await spend(a, projectId, userId, 1000n)) === 'ok') more++;
    expect(ok + more).toBe(20);
    await a.releaseIdle();
    expect(await usageOf(limit.id)).toEqual({ spent: 20_000n, reserved: 0n });
  });

  it('an instance that dies holding a lease: the other never overspends, and the sweeper gives its lease back', async () => {
    const { c, projectId, userId } = await project('Crash');
    const limit = await projectLimit(c, projectId, '0.010');
    await database.db.insert(projectBalances).values({ projectId, balance: 10_000n });
    const dying = instance({ calls: 4 });
    for (let i = 0; i < 3; i++) {
      const x = await dying.admit(columns(projectId, userId), 1000n, true);
      await finish(dying, x, 1000n, 1000n);
    }
    // One call in flight when it dies: never settled.
    await dying.admit(columns(projectId, userId), 1000n, true);
    await dying.stop();
    const held = await usageOf(limit.id);
    expect(held.spent).toBe(3000n);
    expect(held.reserved).toBeGreaterThan(0n);

    const survivor = instance({ calls: 4 });
    let ok = 0;
    while ((await spend(survivor, projectId, userId, 1000n, true)) === 'ok') ok++;
    // The dead instance's lease still holds its share: the survivor cannot spend it.
    expect(3 + ok).toBeLessThan(10);
    expect((await usageOf(limit.id)).spent + held.reserved).toBeLessThanOrEqual(10_000n);

    // Its heartbeat is stale (made so here, rather than waiting a minute): the sweeper returns it.
    await database.db
      .update(gatewayLeases)
      .set({ heartbeatAt: sql`now() - interval '2 minutes'` })
      .where(eq(gatewayLeases.projectId, projectId));
    await survivor.releaseIdle();
    expect(await sweepLeases(database.db, 60_000)).toBe(1);
    while ((await spend(survivor, projectId, userId, 1000n, true)) === 'ok') ok++;
    // Everything but the call cut by the crash (never charged: its usage is unknown).
    expect(3 + ok).toBe(10);
    await survivor.releaseIdle();
    expect(await usageOf(limit.id)).toEqual({ spent: 10_000n, reserved: 0n });
    expect(await balanceOf(projectId)).toEqual({ balance: 0n, reserved: 0n });
    expect(await ledgerTotal(database.db, projectId)).toBe(-10_000n);
  });

  it('a lowered limit: the lease taken under the old one goes back at the next call (NOTIFY from another instance)', async () => {
    const { c, projectId, userId } = await project('Lowered');
    const limit = await projectLimit(c, projectId, '1');
    const leases = instance({ calls: 32, listen: true });
    expect(await spend(leases, projectId, userId, 1000n)).toBe('ok');
    // A big chunk is leased under the old limit.
    expect((await usageOf(limit.id)).reserved).toBeGreaterThanOrEqual(31_000n);
    // Lowered through the API (another "instance"): this one hears it by NOTIFY.
    await projectLimit(c, projectId, '0.003');
    await expect
      .poll(async () => {
        const outcome = await spend(leases, projectId, userId, 1000n);
        return outcome === 'ok' ? (await usageOf(limit.id)).spent : outcome;
      })
      .toBe('refused');
    expect((await usageOf(limit.id)).spent).toBeLessThanOrEqual(3000n);
    await leases.releaseIdle();
    expect((await usageOf(limit.id)).reserved).toBe(0n);
  });

  it('a lease swept while its instance still used it (a long pause): its calls settle without it, nothing held twice', async () => {
    const { c, projectId, userId } = await project('Paused');
    const limit = await projectLimit(c, projectId, '0.010');
    await database.db.insert(projectBalances).values({ projectId, balance: 10_000n });
    const leases = instance({ calls: 4, staleMs: 400 });
    const x = await leases.admit(columns(projectId, userId), 1000n, true);
    await new Promise((r) => setTimeout(r, 300));
    expect(await sweepLeases(database.db, 200)).toBe(1);
    expect(await usageOf(limit.id)).toEqual({ spent: 0n, reserved: 0n });
    await finish(leases, x, 1000n, 1000n);
    // Recorded and charged once, from what the balance has free; nothing reserved.
    expect(await usageOf(limit.id)).toEqual({ spent: 1000n, reserved: 0n });
    expect(await balanceOf(projectId)).toEqual({ balance: 9000n, reserved: 0n });
    const [row] = await database.db
      .select()
      .from(apiRequests)
      .where(eq(apiRequests.id, x.requestId));
    expect(row).toMatchObject({ status: 'succeeded', cost: 1000n });
    // The next call takes a new lease.
    expect(await spend(leases, projectId, userId, 1000n)).toBe('ok');
    await leases.releaseIdle();
    expect(await usageOf(limit.id)).toEqual({ spent: 2000n, reserved: 0n });
  });
});

describe('leases go back', () => {
  it('by themselves once their project is idle', async () => {
    const { c, projectId, userId } = await project('Idle');
    const limit = await projectLimit(c, projectId, '1');
    const leases = instance({ calls: 8, idleMs: 100 });
    expect(await spend(leases, projectId, userId, 1000n)).toBe('ok');
    expect((await usageOf(limit.id)).reserved).toBeGreaterThan(0n);
    await expect.poll(async () => (await usageOf(limit.id)).reserved, { timeout: 3000 }).toBe(0n);
    expect(await usageOf(limit.id)).toEqual({ spent: 1000n, reserved: 0n });
  });

  it('on close; a call still in flight leaves its lease to the sweeper', async () => {
    const { c, projectId, userId } = await project('Close');
    const limit = await projectLimit(c, projectId, '1');
    const first = await project('Close, busy');
    const busyLimit = await first.c.budgets.setLimit({
      projectId: first.projectId,
      scope: 'project',
      period: 'day',
      amount: '1',
    });
    const leases = instance({ calls: 8 });
    expect(await spend(leases, projectId, userId, 1000n)).toBe('ok');
    await leases.admit(columns(first.projectId, first.userId), 1000n, false);
    await leases.close();
    expect(await usageOf(limit.id)).toEqual({ spent: 1000n, reserved: 0n });
    expect((await usageOf(busyLimit.id)).reserved).toBeGreaterThan(0n);
    await expect(leases.admit(columns(projectId, userId), 1000n, false)).rejects.toMatchObject({
      code: 'service.unavailable',
    });
    await database.db
      .update(gatewayLeases)
      .set({ heartbeatAt: sql`now() - interval '2 minutes'` })
      .where(eq(gatewayLeases.projectId, first.projectId));
    expect(await sweepLeases(database.db, 60_000)).toBe(1);
    expect(await usageOf(busyLimit.id)).toEqual({ spent: 0n, reserved: 0n });
  });
});
