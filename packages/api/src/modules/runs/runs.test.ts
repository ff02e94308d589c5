import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FakeAnthropic } from '../../ai/testing/fake-anthropic';
import { formatUsdc } from '../../lib/money';
import type { TestApi } from '../../testing';
import { apiRequests, usageDaily } from '../usage/usage.table';
import { events, MODEL, projectWith, settled, startWithFakeAnthropic } from './testing';

let fake: FakeAnthropic;
let t: TestApi;
let close: () => Promise<void>;
beforeAll(async () => {
  ({ fake, t, close } = await startWithFakeAnthropic());
});
afterAll(() => close());
beforeEach(() => fake.reset());

const answerSchema = {
  type: 'object',
  properties: { answer: { type: 'number' } },
  required: ['answer'],
  additionalProperties: false,
};

async function twoAgents(name: string) {
  const ctx = await projectWith(t, name);
  const b = await ctx.c.agents.create({
    projectId: ctx.projectId,
    name: 'Reporter',
    instructions: 'Report the result.',
    model: MODEL,
    outputSchema: answerSchema,
  });
  const a = await ctx.c.agents.create({
    projectId: ctx.projectId,
    name: 'Solver',
    instructions: 'Solve with the calculator, then hand off.',
    model: MODEL,
    tools: ['calculator'],
    handoffs: [b.id],
  });
  return { ...ctx, a, b };
}

describe('a two-agent workflow', () => {
  it('A calls a tool, hands off to B, B returns structured output; events and steps match', async () => {
    const { c, a, b } = await twoAgents('Workflow');
    fake.script(
      {
        kind: 'tool-use',
        chunks: ['Let me compute.'],
        calls: [{ name: 'calculator', input: { expression: '6 * 7' } }],
      },
      {
        kind: 'tool-use',
        calls: [{ name: 'handoff_to_reporter', input: { reason: 'done computing' } }],
      },
      { kind: 'reply', chunks: ['{"answer": ', '42}'] },
    );
    const started = await c.runs.start({ agentId: a.id, input: 'What is 6 times 7?' });
    expect(['queued', 'running']).toContain(started.status);
    const run = await settled(c, started.id);

    expect(run).toMatchObject({
      status: 'succeeded',
      output: { answer: 42 },
      activeAgentId: b.id,
      error: null,
    });
    expect(run.steps.map((s) => [s.kind, s.agentId])).toEqual([
      ['model', a.id],
      ['tool', a.id],
      ['model', a.id],
      ['handoff', a.id],
      ['model', b.id],
    ]);
    expect(run.steps[1]).toMatchObject({
      input: { expression: '6 * 7' },
      output: { result: 42 },
      error: null,
    });
    expect(run.usage.inputTokens).toBeGreaterThan(0);

    const types = (await events(t, run.id)).map((e) => e.type);
    expect(types).toEqual([
      'run.started',
      'step.started',
      'text.delta',
      'usage',
      'tool.called',
      'tool.result',
      'step.started',
      'usage',
      'handoff',
      'step.started',
      'text.delta',
      'text.delta',
      'usage',
      'run.completed',
    ]);
    const all = await events(t, run.id);
    expect(all.find((e) => e.type === 'handoff')).toMatchObject({
      fromAgentId: a.id,
      toAgentId: b.id,
    });

    // What the model was sent: the tools, then the tool result, then B's instructions + schema.
    const [first, second, third] = fake.requests;
    expect(((first?.tools ?? []) as { name: string }[]).map((x) => x.name).sort()).toEqual([
      'calculator',
      'handoff_to_reporter',
    ]);
    expect(JSON.stringify(second?.messages)).toContain('"tool_use_id"');
    expect(JSON.stringify(second?.messages)).toContain('{\\"result\\":42}');
    expect(String(third?.system)).toContain('Report the result.');
    expect(String(third?.system)).toContain('"answer"');
  });
});

describe('the tool loop recovers from the model’s mistakes', () => {
  it('bad tool input goes back to the model as a tool error, not a crash', async () => {
    const { c, a } = await twoAgents('Bad Input');
    fake.script(
      { kind: 'tool-use', calls: [{ name: 'calculator', input: { expression: 42 } }] },
      { kind: 'tool-use', calls: [{ name: 'calculator', input: { expression: '1 / 0' } }] },
      { kind: 'reply', chunks: ['I could not compute it.'] },
    );
    const run = await settled(c, (await c.runs.start({ agentId: a.id, input: 'go' })).id);
    expect(run.status).toBe('succeeded');
    const tools = run.steps.filter((s) => s.kind === 'tool');
    expect(tools[0]?.error).toContain('Invalid input for calculator');
    expect(tools[1]?.error).toBe('division by zero');
    const resultBlocks = JSON.stringify(fake.requests[1]?.messages);
    expect(resultBlocks).toContain('"is_error":true');
  });

  it('an unknown tool is reported to the model and the run goes on', async () => {
    const { c, a } = await twoAgents('Unknown Tool');
    fake.script(
      { kind: 'tool-use', calls: [{ name: 'rm_rf', input: {} }] },
      { kind: 'reply', chunks: ['Sorry.'] },
    );
    const run = await settled(c, (await c.runs.start({ agentId: a.id, input: 'go' })).id);
    expect(run.status).toBe('succeeded');
    expect(run.steps.find((s) => s.kind === 'tool')?.error).toContain('Unknown tool "rm_rf"');
    expect(run.output).toBe('Sorry.');
  });

  it('a schema mismatch gets one correction; a second mismatch fails the run', async () => {
    const { c, b } = await twoAgents('Schema');
    fake.script(
      { kind: 'reply', chunks: ['forty-two'] },
      { kind: 'reply', chunks: ['```json\n{"answer": 42}\n```'] },
    );
    const ok = await settled(c, (await c.runs.start({ agentId: b.id, input: 'go' })).id);
    expect(ok).toMatchObject({ status: 'succeeded', output: { answer: 42 } });
    expect(JSON.stringify(fake.requests[1]?.messages)).toContain(
      'does not match the required JSON Schema',
    );

    fake.script(
      { kind: 'reply', chunks: ['{"answer": "x"}'] },
      { kind: 'reply', chunks: ['{"wrong": 1}'] },
    );
    const bad = await settled(c, (await c.runs.start({ agentId: b.id, input: 'go' })).id);
    expect(bad).toMatchObject({ status: 'failed', error: { appCode: 'run.output_invalid' } });
    expect((await events(t, bad.id)).at(-1)).toMatchObject({
      type: 'run.failed',
      appCode: 'run.output_invalid',
    });
  });

  it('maxSteps ends a run that keeps calling tools', async () => {
    const { c, projectId } = await projectWith(t, 'Loop');
    const agent = await c.agents.create({
      projectId,
      name: 'Looper',
      instructions: 'x',
      model: MODEL,
      tools: ['current_time'],
      maxSteps: 2,
    });
    fake.script(
      { kind: 'tool-use', calls: [{ name: 'current_time', input: {} }] },
      { kind: 'tool-use', calls: [{ name: 'current_time', input: {} }] },
      { kind: 'tool-use', calls: [{ name: 'current_time', input: {} }] },
    );
    const run = await settled(c, (await c.runs.start({ agentId: agent.id, input: 'go' })).id);
    expect(run).toMatchObject({ status: 'failed', error: { appCode: 'run.max_steps' } });
    expect(run.steps.filter((s) => s.kind === 'model')).toHaveLength(2);
  });
});

describe('failures and control', () => {
  it('an upstream error fails the run with its code', async () => {
    const { c, b } = await twoAgents('Upstream');
    fake.script({ kind: 'error', status: 529, type: 'overloaded_error' });
    const run = await settled(c, (await c.runs.start({ agentId: b.id, input: 'go' })).id);
    expect(run).toMatchObject({ status: 'failed', error: { appCode: 'model.overloaded' } });
  });

  it('cancel stops the upstream stream within a second', async () => {
    const { c, a } = await twoAgents('Cancel');
    fake.script({ kind: 'hang', chunks: ['Thinking'] });
    const started = await c.runs.start({ agentId: a.id, input: 'go' });
    await expect.poll(() => fake.requests.length, { timeout: 5000 }).toBe(1);
    const at = Date.now();
    await c.runs.cancel({ runId: started.id });
    const closed = await fake.requests[0]?.closed;
    expect(closed?.finished).toBe(false);
    expect((closed?.at ?? Number.POSITIVE_INFINITY) - at).toBeLessThan(1000);
    const run = await settled(c, started.id);
    expect(run.status).toBe('cancelled');
    expect((await events(t, run.id)).at(-1)).toEqual({ type: 'run.cancelled' });
  });

  it('the same idempotency key returns the same run, also concurrently', async () => {
    const { c, b } = await twoAgents('Idempotent');
    fake.script({ kind: 'reply', chunks: ['{"answer": 1}'] });
    const runs = await Promise.all(
      Array.from({ length: 5 }, () =>
        c.runs.start({ agentId: b.id, input: 'go', idempotencyKey: 'job-123' }),
      ),
    );
    expect(new Set(runs.map((r) => r.id)).size).toBe(1);
    await settled(c, runs[0]?.id ?? '');
    expect((await c.runs.list({ projectId: runs[0]?.projectId ?? '' })).items).toHaveLength(1);
  });
});

describe.runIf(Boolean(process.env.TEST_DATABASE_URL))('model calls settle beside the run', () => {
  it('a settlement that has not landed holds the next model call and the run end, not the round', async () => {
    const { c, projectId, a } = await twoAgents('Settling');
    // A first run writes the project's usage_daily rows, which a settlement then updates.
    fake.script({ kind: 'reply', chunks: ['warm'] });
    await settled(c, (await c.runs.start({ agentId: a.id, input: 'warm up' })).id);
    fake.reset();
    fake.script(
      { kind: 'tool-use', calls: [{ name: 'calculator', input: { expression: '2 + 3' } }] },
      { kind: 'reply', chunks: ['five'] },
    );
    let runId = '';
    // Holding those rows stalls the first model call's settlement (on another connection).
    await t.api.deps.db.transaction(async (tx) => {
      await tx.select().from(usageDaily).where(eq(usageDaily.projectId, projectId)).for('update');
      runId = (await c.runs.start({ agentId: a.id, input: 'add' })).id;
      // The round (model step and tool step) commits while its settlement waits...
      await expect
        .poll(async () => (await c.runs.get({ runId })).steps.map((s) => s.kind), {
          timeout: 5000,
        })
        .toEqual(['model', 'tool']);
      // ...but the next model call waits for it: its admission must see what the first cost.
      await new Promise((r) => setTimeout(r, 300));
      expect(fake.requests).toHaveLength(1);
      expect((await c.runs.get({ runId })).status).toBe('running');
    });
    const run = await settled(c, runId);
    expect(run).toMatchObject({ status: 'succeeded', output: 'five' });
    // Finished, its usage is recorded: both calls, the run's cost to the micro-USDC.
    const calls = await t.api.deps.db
      .select({ status: apiRequests.status, cost: apiRequests.cost })
      .from(apiRequests)
      .where(eq(apiRequests.runId, runId));
    expect(calls.map((r) => r.status)).toEqual(['succeeded', 'succeeded']);
    expect(formatUsdc(calls.reduce((sum, r) => sum + r.cost, 0n))).toBe(run.cost);
  });
});
