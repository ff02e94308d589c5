import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FakeAnthropic } from '../../ai/testing/fake-anthropic';
import { startFakeAnthropic } from '../../ai/testing/fake-anthropic';
import { createApi, createCaller } from '../../index';
import { createTestDatabase, failure, type TestApi, testConfig } from '../../testing';
import { auditEvents } from '../audit/audit.table';
import { runApprovals } from './runs.table';
import { events, MODEL, projectWith, settled, startWithFakeAnthropic } from './testing';

/**
 * Human approval: a run reaching a call of a tool its agent marks requiresApproval pauses
 * ('awaiting_approval', holding no worker), and continues on whichever instance claims it once
 * a person with the approver role decides; a rejection reaches the model as a tool error.
 */

let fake: FakeAnthropic;
let t: TestApi;
let close: () => Promise<void>;
beforeAll(async () => {
  ({ fake, t, close } = await startWithFakeAnthropic({ RUNS_MAX_CONCURRENT_PER_PROJECT: '1' }));
});
afterAll(() => close());
beforeEach(() => fake.reset());

type Caller = ReturnType<TestApi['caller']>;

async function careful(name: string) {
  const ctx = await projectWith(t, name);
  const agent = await ctx.c.agents.create({
    projectId: ctx.projectId,
    name: 'Careful',
    instructions: `careful-${name}`,
    model: MODEL,
    tools: ['calculator', 'current_time'],
    requiresApproval: ['calculator'],
  });
  return { ...ctx, agent };
}

/** Waits until the run is in `status` and returns it. */
async function reaches(c: Caller, runId: string, status: string) {
  await expect
    .poll(async () => (await c.runs.get({ runId })).status, { timeout: 15_000, interval: 50 })
    .toBe(status);
  return c.runs.get({ runId });
}

const mine = (tag: string) =>
  fake.requests.filter((r) => JSON.stringify(r.system).includes(`careful-${tag}`));

describe('runs waiting for approval', () => {
  it('pauses before the call, holding nothing; approved, the call runs and the run ends', async () => {
    const { c, agent, owner } = await careful('approve');
    fake.script(
      {
        kind: 'tool-use',
        chunks: ['Computing.'],
        calls: [{ name: 'calculator', input: { expression: '6 * 7' } }],
      },
      { kind: 'reply', chunks: ['42'] },
    );
    const started = await c.runs.start({ agentId: agent.id, input: 'What is 6 times 7?' });
    const waiting = await reaches(c, started.id, 'awaiting_approval');
    // The model step is stored; the tool has not run.
    expect(waiting.steps.map((s) => s.kind)).toEqual(['model']);
    expect(waiting.approvals).toEqual([
      expect.objectContaining({
        kind: 'tool',
        tool: 'calculator',
        input: { expression: '6 * 7' },
        agentId: agent.id,
        status: 'pending',
        decidedBy: null,
      }),
    ]);
    const approval = waiting.approvals[0];
    if (!approval) throw new Error('no approval');
    expect(Date.parse(approval.expiresAt) - Date.now()).toBeGreaterThan(23 * 3600_000);
    const requested = (await events(t, started.id)).find((e) => e.type === 'approval.requested');
    expect(requested).toMatchObject({
      approvalId: approval.id,
      tool: 'calculator',
      input: { expression: '6 * 7' },
    });
    // Holds no worker (the project may run one at a time) and no budget reservation.
    expect(t.api.deps.runner.running).toBe(0);
    expect(t.api.deps.gateway.inFlight()).toBe(0);
    expect(mine('approve')).toHaveLength(1);

    const decided = await c.runs.approve({
      runId: started.id,
      approvalId: approval.id,
      note: 'fine',
    });
    expect(decided).toMatchObject({ status: 'approved', decidedBy: owner.user.id, note: 'fine' });
    const run = await settled(c, started.id);
    expect(run).toMatchObject({ status: 'succeeded', output: 42 });
    expect(run.steps.map((s) => s.kind)).toEqual(['model', 'tool', 'model']);
    expect(run.steps[1]).toMatchObject({ output: { result: 42 }, error: null });
    // The model got the result of the approved call, nothing redone.
    expect(mine('approve')).toHaveLength(2);
    expect(JSON.stringify(mine('approve')[1]?.messages)).toContain('{\\"result\\":42}');
    const types = (await events(t, started.id)).map((e) => e.type);
    expect(types.indexOf('approval.requested')).toBeLessThan(types.indexOf('approval.decided'));
    expect(types.indexOf('approval.decided')).toBeLessThan(types.indexOf('tool.result'));
    expect(types.at(-1)).toBe('run.completed');
    // The decision is audited: who, which run, which step.
    const [audit] = await t.api.deps.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.action, 'runs.step_approved'));
    expect(audit).toMatchObject({
      actorId: owner.user.id,
      target: started.id,
      metadata: { approvalId: approval.id, tool: 'calculator', note: 'fine' },
    });
  });

  it('rejected: the model gets a tool error with the note and goes another way', async () => {
    const { c, agent } = await careful('reject');
    fake.script(
      { kind: 'tool-use', calls: [{ name: 'calculator', input: { expression: '1/0' } }] },
      { kind: 'reply', chunks: ['I will not compute that.'] },
    );
    const started = await c.runs.start({ agentId: agent.id, input: 'divide' });
    const waiting = await reaches(c, started.id, 'awaiting_approval');
    const approvalId = waiting.approvals[0]?.id ?? '';
    await c.runs.reject({ runId: started.id, approvalId, note: 'not today' });
    const run = await settled(c, started.id);
    expect(run).toMatchObject({ status: 'succeeded', output: 'I will not compute that.' });
    expect(run.steps[1]).toMatchObject({
      kind: 'tool',
      output: null,
      error: expect.stringMatching(/rejected.*not today/),
    });
    const second = JSON.stringify(mine('reject')[1]?.messages);
    expect(second).toContain('not today');
    expect(second).toContain('"is_error":true');
    expect(run.approvals[0]).toMatchObject({ status: 'rejected', note: 'not today' });
  });

  it('a call of a tool without requiresApproval runs at once', async () => {
    const { c, agent } = await careful('free');
    fake.script(
      { kind: 'tool-use', calls: [{ name: 'current_time', input: {} }] },
      { kind: 'reply', chunks: ['done'] },
    );
    const run = await settled(c, (await c.runs.start({ agentId: agent.id, input: 'time?' })).id);
    expect(run).toMatchObject({ status: 'succeeded', approvals: [] });
  });

  it('who may decide: the approver role, this project, once; concurrent decisions: one wins', async () => {
    const { c, agent, projectId } = await careful('roles');
    fake.script({ kind: 'tool-use', calls: [{ name: 'calculator', input: { expression: '2' } }] });
    const started = await c.runs.start({ agentId: agent.id, input: 'x' });
    const waiting = await reaches(c, started.id, 'awaiting_approval');
    const approvalId = waiting.approvals[0]?.id ?? '';
    const member = await t.signUp('Approval Member');
    await c.projects.members.add({ projectId, email: member.user.email, role: 'member' });
    const stranger = await t.signUp('Approval Stranger');
    const input = { runId: started.id, approvalId };
    // RUN_APPROVER_ROLE is admin by default: a member may watch, not decide.
    expect(await failure(t.caller(member.accessToken).runs.approve(input))).toEqual({
      code: 'FORBIDDEN',
      appCode: 'projects.role_insufficient',
    });
    expect(await failure(t.caller(stranger.accessToken).runs.reject(input))).toEqual({
      code: 'NOT_FOUND',
      appCode: 'runs.not_found',
    });
    expect(await failure(c.runs.approve({ ...input, approvalId: randomUUID() }))).toEqual({
      code: 'NOT_FOUND',
      appCode: 'runs.approval_not_found',
    });
    fake.script({ kind: 'reply', chunks: ['ok'] });
    const outcomes = await Promise.allSettled([c.runs.approve(input), c.runs.reject(input)]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    const lost = outcomes.find((o) => o.status === 'rejected');
    expect(await failure(Promise.reject(lost?.status === 'rejected' && lost.reason))).toEqual({
      code: 'CONFLICT',
      appCode: 'runs.approval_closed',
    });
    expect((await settled(c, started.id)).status).toBe('succeeded');
  });

  it('a paused run does not keep the next run of its project waiting', async () => {
    const { c, agent, projectId } = await careful('slots');
    fake.script({ kind: 'tool-use', calls: [{ name: 'calculator', input: { expression: '3' } }] });
    const paused = await c.runs.start({ agentId: agent.id, input: 'a' });
    await reaches(c, paused.id, 'awaiting_approval');
    const plain = await c.agents.create({
      projectId,
      name: 'Plain',
      instructions: 'careful-slots plain',
      model: MODEL,
    });
    fake.script({ kind: 'reply', chunks: ['second'] });
    const next = await settled(c, (await c.runs.start({ agentId: plain.id, input: 'b' })).id);
    expect(next).toMatchObject({ status: 'succeeded', output: 'second' });
    expect((await c.runs.get({ runId: paused.id })).status).toBe('awaiting_approval');
    await c.runs.cancel({ runId: paused.id });
  });

  it('cancelled while waiting: ended at once, its approval closed', async () => {
    const { c, agent } = await careful('cancel');
    fake.script({ kind: 'tool-use', calls: [{ name: 'calculator', input: { expression: '4' } }] });
    const started = await c.runs.start({ agentId: agent.id, input: 'x' });
    const waiting = await reaches(c, started.id, 'awaiting_approval');
    expect(await c.runs.cancel({ runId: started.id })).toMatchObject({ status: 'cancelled' });
    const run = await c.runs.get({ runId: started.id });
    expect(run.approvals[0]).toMatchObject({ status: 'cancelled' });
    expect(
      await failure(
        c.runs.approve({ runId: started.id, approvalId: waiting.approvals[0]?.id ?? '' }),
      ),
    ).toEqual({ code: 'CONFLICT', appCode: 'runs.approval_closed' });
    expect((await events(t, started.id)).at(-1)).toEqual({ type: 'run.cancelled' });
  });

  it('nobody decides in time: the approval expires and the run fails run.approval_expired', async () => {
    const { c, agent } = await careful('expire');
    fake.script({ kind: 'tool-use', calls: [{ name: 'calculator', input: { expression: '5' } }] });
    const started = await c.runs.start({ agentId: agent.id, input: 'x' });
    const waiting = await reaches(c, started.id, 'awaiting_approval');
    const approvalId = waiting.approvals[0]?.id ?? '';
    // Not yet due: the sweep leaves it.
    await t.api.deps.runner.sweep();
    expect((await c.runs.get({ runId: started.id })).status).toBe('awaiting_approval');
    await t.api.deps.db
      .update(runApprovals)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(runApprovals.id, approvalId));
    await t.api.deps.runner.sweep();
    const run = await c.runs.get({ runId: started.id });
    expect(run).toMatchObject({
      status: 'failed',
      error: { appCode: 'run.approval_expired' },
      approvals: [expect.objectContaining({ status: 'expired' })],
    });
    expect((await events(t, started.id)).at(-1)).toMatchObject({
      type: 'run.failed',
      appCode: 'run.approval_expired',
    });
    expect(await failure(c.runs.approve({ runId: started.id, approvalId }))).toEqual({
      code: 'CONFLICT',
      appCode: 'runs.approval_closed',
    });
  });
});

describe("a model step above the policy's approval threshold", () => {
  it('waits before the model is called; approved it runs, rejected the run fails', async () => {
    const { c, projectId } = await projectWith(t, 'Costly');
    const agent = await c.agents.create({
      projectId,
      name: 'Spender',
      instructions: 'careful-costly',
      model: MODEL,
    });
    // Any real call costs more than a micro-USDC at worst.
    const policy = await c.policies.update({ projectId, approvalCostThreshold: '0.000001' });
    expect(policy.approvalCostThreshold).toBe('0.000001');
    fake.script({ kind: 'reply', chunks: ['worth it'] });
    const first = await c.runs.start({ agentId: agent.id, input: 'spend' });
    const waiting = await reaches(c, first.id, 'awaiting_approval');
    expect(waiting.approvals).toEqual([
      expect.objectContaining({
        kind: 'model',
        tool: null,
        status: 'pending',
        input: { model: MODEL, maxOutputTokens: expect.any(Number) },
        cost: expect.stringMatching(/^0\.\d+$/),
      }),
    ]);
    // Nothing was spent: the model was not called.
    expect(mine('costly')).toHaveLength(0);
    expect(waiting.steps).toEqual([]);
    await c.runs.approve({ runId: first.id, approvalId: waiting.approvals[0]?.id ?? '' });
    expect(await settled(c, first.id)).toMatchObject({ status: 'succeeded', output: 'worth it' });
    expect(mine('costly')).toHaveLength(1);

    const second = await c.runs.start({ agentId: agent.id, input: 'spend more' });
    const paused = await reaches(c, second.id, 'awaiting_approval');
    await c.runs.reject({
      runId: second.id,
      approvalId: paused.approvals[0]?.id ?? '',
      note: 'too dear',
    });
    expect(await settled(c, second.id)).toMatchObject({
      status: 'failed',
      error: { appCode: 'run.rejected', message: expect.stringMatching(/too dear/) },
    });
    expect(mine('costly')).toHaveLength(1);

    // Without a threshold, no step waits.
    await c.policies.update({ projectId, approvalCostThreshold: null });
    fake.script({ kind: 'reply', chunks: ['free again'] });
    const third = await settled(c, (await c.runs.start({ agentId: agent.id, input: 'x' })).id);
    expect(third).toMatchObject({ status: 'succeeded', approvals: [] });
  });
});

describe.runIf(Boolean(process.env.TEST_DATABASE_URL))('a waiting run and a restart', () => {
  it('survives its instance: approved through another, it finishes there', async () => {
    const upstream = await startFakeAnthropic();
    const database = await createTestDatabase();
    const env = {
      ANTHROPIC_API_KEY: upstream.apiKey,
      ANTHROPIC_BASE_URL: upstream.url,
      ANTHROPIC_MAX_RETRIES: '0',
      DATABASE_URL: database.url ?? '',
    };
    const open = () => createApi({ config: testConfig(env), migrate: false });
    const caller = (api: Awaited<ReturnType<typeof open>>, token: string | null = null) =>
      createCaller(api.createContext({ token, ip: '127.0.0.1', requestId: randomUUID() }));
    const first = await open();
    let second: Awaited<ReturnType<typeof open>> | null = null;
    try {
      const session = await caller(first).auth.register({
        email: `restart.${randomUUID().slice(0, 8)}@example.com`,
        password: 'correct horse battery staple',
        name: 'Restart',
      });
      const c1 = caller(first, session.accessToken);
      const { id: projectId } = await c1.projects.create({ name: 'Restart' });
      const agent = await c1.agents.create({
        projectId,
        name: 'Careful',
        instructions: 'restart',
        model: MODEL,
        tools: ['calculator'],
        requiresApproval: ['calculator'],
      });
      upstream.script(
        { kind: 'tool-use', calls: [{ name: 'calculator', input: { expression: '7 * 6' } }] },
        { kind: 'reply', chunks: ['forty-two'] },
      );
      const started = await c1.runs.start({ agentId: agent.id, input: 'x' });
      const waiting = await reaches(c1, started.id, 'awaiting_approval');
      await first.close();
      second = await open();
      const c2 = caller(second, session.accessToken);
      await c2.runs.approve({ runId: started.id, approvalId: waiting.approvals[0]?.id ?? '' });
      const run = await settled(c2, started.id);
      expect(run).toMatchObject({ status: 'succeeded', output: 'forty-two' });
      expect(run.steps.map((s) => s.kind)).toEqual(['model', 'tool', 'model']);
    } finally {
      await second?.close();
      await database.close();
      await upstream.close();
    }
  }, 60_000);
});
