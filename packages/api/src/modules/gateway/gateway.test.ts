import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelError } from '../../ai/provider';
import type { Session } from '../../index';
import { AppError } from '../../lib/errors';
import { createTestApi, type TestApi } from '../../testing';
import { getBalance, ledgerTotal } from '../billing/billing.service';
import { budgetAlerts, budgetUsage } from '../budgets/budgets.table';
import { apiRequestHolds, apiRequests } from '../usage/usage.table';
import { createGateway } from './gateway';

/**
 * mock-echo priced at 1000 micro-USDC per output token, free input, and a policy capping
 * output at 2 tokens (the mock's reply to "go" is "Echo: go", 2 tokens): every call then
 * costs exactly its worst case, 2000 micro-USDC = 0.002 USDC, so "a budget that affords
 * exactly k calls" is exact whatever the timing.
 */
const PRICES = JSON.stringify({ 'mock-echo': { input: '0', output: '1000' } });
const COST = 2000n;

async function call(t: TestApi, opts: { projectId: string; userId: string; agentId?: string }) {
  let text = '';
  for await (const ev of t.api.deps.gateway.stream({
    ...opts,
    source: 'chat',
    model: 'mock-echo',
    messages: [{ role: 'user', content: 'go' }],
    maxOutputTokens: 1000,
  })) {
    if (ev.type === 'delta') text += ev.text;
  }
  return text;
}

async function outcomes(promises: Promise<unknown>[]) {
  const settled = await Promise.allSettled(promises);
  const codes = settled.map((s) =>
    s.status === 'fulfilled'
      ? 'ok'
      : s.reason instanceof AppError || s.reason instanceof ModelError
        ? s.reason.code
        : String(s.reason),
  );
  const count = (c: string) => codes.filter((x) => x === c).length;
  return { codes, count };
}

async function setup(t: TestApi, name: string) {
  const owner = await t.signUp(name);
  const c = t.caller(owner.accessToken);
  const project = await c.projects.create({ name });
  await c.policies.update({ projectId: project.id, maxOutputTokens: 2 });
  return { owner, c, projectId: project.id };
}

describe('budgets under concurrency (BILLING_MODE=off)', () => {
  let t: TestApi;
  beforeAll(async () => {
    t = await createTestApi({ MODEL_PRICES: PRICES }, { mockChunkDelayMs: 0 });
  });
  afterAll(() => t.close());

  it('200 concurrent calls against a budget for exactly 7: 7 succeed, spend = budget, nothing held', async () => {
    const { owner, c, projectId } = await setup(t, 'Budget');
    const limit = await c.budgets.setLimit({
      projectId,
      scope: 'project',
      period: 'month',
      amount: '0.014',
    });
    const { count } = await outcomes(
      Array.from({ length: 200 }, () => call(t, { projectId, userId: owner.user.id })),
    );
    expect(count('ok')).toBe(7);
    expect(count('budget.exceeded')).toBe(193);
    const [usage] = await t.api.deps.db
      .select()
      .from(budgetUsage)
      .where(eq(budgetUsage.limitId, limit.id));
    expect(usage?.spent).toBe(7n * COST);
    expect(usage?.reserved).toBe(0n);
    const rows = await t.api.deps.db
      .select()
      .from(apiRequests)
      .where(eq(apiRequests.projectId, projectId));
    expect(rows.filter((r) => r.status === 'succeeded')).toHaveLength(7);
    expect(
      rows.filter((r) => r.status === 'denied' && r.errorCode === 'budget.exceeded'),
    ).toHaveLength(193);
    expect(rows.some((r) => r.status === 'in_progress')).toBe(false);
    const view = await c.budgets.get({ projectId });
    expect(view.limits[0]).toMatchObject({
      spent: '0.014000',
      reserved: '0.000000',
      amount: '0.014000',
    });
    expect(view.spentThisPeriod).toBe('0.014000');
  });

  it('member and agent limits apply to that member or agent only', async () => {
    const { owner, c, projectId } = await setup(t, 'Scoped');
    const other = await t.signUp('Other Member');
    await c.projects.members.add({ projectId, email: other.user.email, role: 'member' });
    await c.budgets.setLimit({
      projectId,
      scope: 'member',
      scopeId: other.user.id,
      period: 'day',
      amount: '0.002',
    });
    const agentId = crypto.randomUUID();
    await c.budgets.setLimit({
      projectId,
      scope: 'agent',
      scopeId: agentId,
      period: 'day',
      amount: '0.002',
    });
    await call(t, { projectId, userId: other.user.id });
    await expect(call(t, { projectId, userId: other.user.id })).rejects.toMatchObject({
      code: 'budget.exceeded',
    });
    await call(t, { projectId, userId: owner.user.id });
    await call(t, { projectId, userId: owner.user.id, agentId });
    await expect(call(t, { projectId, userId: owner.user.id, agentId })).rejects.toMatchObject({
      code: 'budget.exceeded',
    });
    await expect(
      c.budgets.setLimit({
        projectId,
        scope: 'member',
        scopeId: crypto.randomUUID(),
        period: 'day',
        amount: '1',
      }),
    ).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(
      c.budgets.setLimit({
        projectId,
        scope: 'project',
        scopeId: agentId,
        period: 'day',
        amount: '1',
      }),
    ).rejects.toMatchObject({
      code: 'BAD_REQUEST',
    });
  });

  it('periods reset: spend in an earlier day does not count today', async () => {
    const { owner, c, projectId } = await setup(t, 'Periods');
    const limit = await c.budgets.setLimit({
      projectId,
      scope: 'project',
      period: 'day',
      amount: '0.002',
    });
    const yesterday = new Date(Date.parse(limit.periodStart) - 86_400_000);
    await t.api.deps.db
      .insert(budgetUsage)
      .values({ limitId: limit.id, periodStart: yesterday, spent: COST });
    await call(t, { projectId, userId: owner.user.id });
    await expect(call(t, { projectId, userId: owner.user.id })).rejects.toMatchObject({
      code: 'budget.exceeded',
    });
  });

  it('alerts fire once per threshold per period, on the event log', async () => {
    const { owner, c, projectId } = await setup(t, 'Alerts');
    const limit = await c.budgets.setLimit({
      projectId,
      scope: 'project',
      period: 'month',
      amount: '0.01',
      alertAt: [0.5, 0.9],
    });
    for (let i = 0; i < 5; i++) await call(t, { projectId, userId: owner.user.id });
    const alerts = await t.api.deps.db
      .select()
      .from(budgetAlerts)
      .where(eq(budgetAlerts.limitId, limit.id));
    expect(alerts.map((a) => a.threshold).sort()).toEqual([0.5, 0.9]);
    const audited = await c.audit.list({ projectId, action: 'budgets.alert' });
    expect(audited.items.map((e) => e.metadata)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ threshold: 0.5 }),
        expect.objectContaining({ threshold: 0.9 }),
      ]),
    );
    expect((await c.audit.list({ projectId, action: 'budgets.limit_set' })).items).toHaveLength(1);
    const events = await t.api.deps.bus.readAfter(`budget:${projectId}`, 0, 10);
    expect(events.map((e) => e.payload)).toEqual([
      { limitId: limit.id, threshold: 0.5, spent: '0.006000', amount: '0.010000' },
      { limitId: limit.id, threshold: 0.9, spent: '0.010000', amount: '0.010000' },
    ]);
  });

  it('policy denials: model not allowed, cost cap, requests per minute', async () => {
    const { owner, c, projectId } = await setup(t, 'Policy');
    await c.policies.update({ projectId, allowedModels: ['claude-haiku-4-5'] });
    await expect(call(t, { projectId, userId: owner.user.id })).rejects.toMatchObject({
      code: 'policy.model_not_allowed',
    });
    await c.policies.update({ projectId, allowedModels: null, maxCostPerRequest: '0.001' });
    await expect(call(t, { projectId, userId: owner.user.id })).rejects.toMatchObject({
      code: 'policy.cost_limit',
    });
    await c.policies.update({ projectId, maxCostPerRequest: null, requestsPerMinute: 3 });
    const { count } = await outcomes(
      Array.from({ length: 5 }, () => call(t, { projectId, userId: owner.user.id })),
    );
    expect(count('ok')).toBe(3);
    expect(count('rate_limited')).toBe(2);
    expect((await c.audit.list({ projectId, action: 'policies.updated' })).items).toHaveLength(4);
    expect(await c.policies.get({ projectId })).toMatchObject({
      allowedModels: null,
      maxCostPerRequest: null,
      requestsPerMinute: 3,
      maxOutputTokens: 2,
    });
  });

  it('a chat reply denied by the gateway ends as reply.failed with its appCode', async () => {
    const { c, projectId } = await setup(t, 'Chat Denied');
    await c.budgets.setLimit({ projectId, scope: 'project', period: 'total', amount: '0.000001' });
    const conversation = await c.chat.conversations.create({ projectId });
    const { replyId } = await c.chat.send({ conversationId: conversation.id, content: 'go' });
    await expect
      .poll(async () =>
        (await c.chat.messages.list({ conversationId: conversation.id })).items.find(
          (m) => m.id === replyId,
        ),
      )
      .toMatchObject({ status: 'failed', errorCode: 'budget.exceeded' });
  });

  it('reservations of a call whose process died are released by the sweeper', async () => {
    const { owner, c, projectId } = await setup(t, 'Crashed');
    const limit = await c.budgets.setLimit({
      projectId,
      scope: 'project',
      period: 'month',
      amount: '0.002',
    });
    // What a killed process leaves behind: an in-progress call holding the whole budget.
    const [row] = await t.api.deps.db
      .insert(apiRequests)
      .values({
        projectId,
        userId: owner.user.id,
        source: 'chat',
        model: 'mock-echo',
        status: 'in_progress',
        reserved: COST,
        heartbeatAt: new Date(Date.now() - 10 * 60_000),
      })
      .returning();
    if (!row) throw new Error('no row');
    const start = new Date(limit.periodStart);
    await t.api.deps.db
      .insert(budgetUsage)
      .values({ limitId: limit.id, periodStart: start, reserved: COST });
    await t.api.deps.db
      .insert(apiRequestHolds)
      .values({ requestId: row.id, limitId: limit.id, periodStart: start, amount: COST });
    await expect(call(t, { projectId, userId: owner.user.id })).rejects.toMatchObject({
      code: 'budget.exceeded',
    });

    expect(await t.api.deps.gateway.sweep()).toBeGreaterThanOrEqual(1);
    const [usage] = await t.api.deps.db
      .select()
      .from(budgetUsage)
      .where(eq(budgetUsage.limitId, limit.id));
    expect(usage).toMatchObject({ reserved: 0n, spent: 0n });
    const [swept] = await t.api.deps.db
      .select()
      .from(apiRequests)
      .where(eq(apiRequests.id, row.id));
    expect(swept).toMatchObject({
      status: 'failed',
      errorCode: 'gateway.interrupted',
      reserved: 0n,
    });
    await call(t, { projectId, userId: owner.user.id });
  });
});

describe('prepaid balance (BILLING_MODE=prepaid)', () => {
  let t: TestApi;
  let admin: Session;
  beforeAll(async () => {
    t = await createTestApi(
      { MODEL_PRICES: PRICES, BILLING_MODE: 'prepaid' },
      { mockChunkDelayMs: 0 },
    );
    admin = await t.signUp('Platform Admin');
  });
  afterAll(() => t.close());

  it('200 concurrent calls on a balance for exactly 5: 5 succeed, balance 0, ledger sums to it', async () => {
    const { owner, projectId } = await setup(t, 'Prepaid');
    await expect(call(t, { projectId, userId: owner.user.id })).rejects.toMatchObject({
      code: 'balance.insufficient',
    });
    const credit = await t
      .caller(admin.accessToken)
      .payments.credit({ projectId, amount: '0.01', reason: 'test top-up' });
    expect(credit).toMatchObject({ kind: 'credit', amount: '0.010000', balanceAfter: '0.010000' });
    const { count } = await outcomes(
      Array.from({ length: 200 }, () => call(t, { projectId, userId: owner.user.id })),
    );
    expect(count('ok')).toBe(5);
    expect(count('balance.insufficient')).toBe(195);
    const balance = await getBalance(t.api.deps.db, projectId);
    expect(balance).toEqual({ balance: 0n, reserved: 0n });
    expect(await ledgerTotal(t.api.deps.db, projectId)).toBe(balance.balance);
  });

  it('credits are idempotent by key; only platform admins may credit', async () => {
    const { owner, c, projectId } = await setup(t, 'Credits');
    const args = { projectId, amount: '1.5', reason: 'goodwill', idempotencyKey: 'once-only-key' };
    await t.caller(admin.accessToken).payments.credit(args);
    await t.caller(admin.accessToken).payments.credit(args);
    expect((await c.budgets.get({ projectId })).balance).toBe('1.500000');
    const credited = await t
      .caller(admin.accessToken)
      .audit.list({ projectId, action: 'payments.credited' });
    expect(credited.items).toHaveLength(1);
    expect(credited.items[0]).toMatchObject({
      actorId: admin.user.id,
      metadata: { amount: '1.500000', reason: 'goodwill' },
    });
    await expect(
      t.caller(owner.accessToken).payments.credit({ ...args, idempotencyKey: 'other-key-1' }),
    ).rejects.toMatchObject({
      code: 'FORBIDDEN',
    });
    await expect(
      t
        .caller(admin.accessToken)
        .payments.credit({ projectId, amount: '0.0000001', reason: 'too precise' }),
    ).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('a crashed prepaid call releases exactly its balance hold, even swept by an instance with billing off', async () => {
    const { owner, projectId } = await setup(t, 'Prepaid Crash');
    await t.caller(admin.accessToken).payments.credit({ projectId, amount: '1', reason: 'seed' });
    // Two calls in flight: one from a dead process (stale), one alive; each holds 0.002.
    const [dead, alive] = await t.api.deps.db
      .insert(apiRequests)
      .values(
        [10, 0].map((minutesAgo) => ({
          projectId,
          userId: owner.user.id,
          source: 'chat' as const,
          model: 'mock-echo',
          status: 'in_progress' as const,
          reserved: COST,
          balanceHeld: COST,
          heartbeatAt: new Date(Date.now() - minutesAgo * 60_000),
        })),
      )
      .returning();
    await t.api.deps.db.execute(
      sql`update project_balances set reserved = ${2n * COST} where project_id = ${projectId}`,
    );
    // Another instance of the same database, configured with billing off, runs the sweep.
    const offGateway = createGateway({
      ...t.api.deps,
      policies: t.api.deps.gateway.policies,
      billingMode: 'off',
    });
    expect(await offGateway.sweep()).toBe(1);
    // The live call's hold stays; the dead one's is gone; nothing was charged.
    expect(await getBalance(t.api.deps.db, projectId)).toEqual({
      balance: 1_000_000n,
      reserved: COST,
    });
    const rows = await t.api.deps.db
      .select()
      .from(apiRequests)
      .where(eq(apiRequests.projectId, projectId));
    expect(rows.find((r) => r.id === dead?.id)).toMatchObject({
      status: 'failed',
      balanceHeld: COST,
      reserved: 0n,
    });
    expect(rows.find((r) => r.id === alive?.id)).toMatchObject({ status: 'in_progress' });
  });

  it('the database refuses a negative balance whatever the code does', async () => {
    const { projectId } = await setup(t, 'Backstop');
    await t.caller(admin.accessToken).payments.credit({ projectId, amount: '1', reason: 'seed' });
    await expect(
      t.api.deps.db.execute(
        sql`update project_balances set balance = -1 where project_id = ${projectId}`,
      ),
    ).rejects.toThrow();
  });
});
