import { and, asc, eq, inArray } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FakeAnthropic } from '../../ai/testing/fake-anthropic';
import type { TestApi } from '../../testing';
import { commitRound, publishRunEvent, RunLost, type StepRow } from './run-store';
import { type RunEvent, runTopic } from './runs.dto';
import { runSteps, runs } from './runs.table';
import { events, MODEL, projectWith, settled, startWithFakeAnthropic } from './testing';

/**
 * The run worker stores a round (a model step and its tool steps) in one transaction with
 * its deferred events and the transcript, and publishes live events in batches: what that
 * design could break.
 */

let fake: FakeAnthropic;
let t: TestApi;
let close: () => Promise<void>;
beforeAll(async () => {
  ({ fake, t, close } = await startWithFakeAnthropic());
});
afterAll(() => close());
beforeEach(() => fake.reset());

const toolExchange = [
  { role: 'user' as const, content: 'go' },
  {
    role: 'assistant' as const,
    content: [{ type: 'tool_use' as const, id: 'toolu_1', name: 'current_time', input: {} }],
  },
  {
    role: 'user' as const,
    content: [{ type: 'tool_result' as const, toolUseId: 'toolu_1', content: '{"iso":"x"}' }],
  },
];

// Rows made here, ended after each test: the runner's poll and sweeps must not pick them up
// and spend the fake's script on them.
const made: string[] = [];
afterEach(async () => {
  const ids = made.splice(0);
  if (ids.length === 0) return;
  await t.api.deps.db
    .update(runs)
    .set({ status: 'succeeded', heartbeatAt: null })
    .where(and(inArray(runs.id, ids), inArray(runs.status, ['queued', 'running'])));
});

/** A run row as a worker holds it: 'running', one user turn, no steps. */
async function runningRun(name: string, status: 'running' | 'failed' = 'running') {
  const { c, projectId, owner } = await projectWith(t, name);
  const agent = await c.agents.create({
    projectId,
    name: 'Clock',
    instructions: `${name} agent`,
    model: MODEL,
    tools: ['current_time'],
  });
  const [row] = await t.api.deps.db
    .insert(runs)
    .values({
      projectId,
      agentId: agent.id,
      activeAgentId: agent.id,
      input: 'go',
      status,
      createdBy: owner.user.id,
      heartbeatAt: new Date(),
      startedAt: new Date(),
      transcript: [{ role: 'user', content: 'go' }],
    })
    .returning();
  if (!row) throw new Error('no row');
  made.push(row.id);
  return { c, agent, run: row };
}

const step = (runId: string, agentId: string, index: number): StepRow => ({
  runId,
  index,
  agentId,
  kind: index % 2 === 0 ? 'model' : 'tool',
  input: {},
  output: {},
  startedAt: new Date(),
  finishedAt: new Date(),
});

async function stored(runId: string) {
  const [row] = await t.api.deps.db.select().from(runs).where(eq(runs.id, runId));
  const steps = await t.api.deps.db
    .select()
    .from(runSteps)
    .where(eq(runSteps.runId, runId))
    .orderBy(asc(runSteps.index));
  return { row, steps, events: await events(t, runId) };
}

describe('a round commits whole or not at all', () => {
  const usage: RunEvent = { type: 'usage', inputTokens: 3, outputTokens: 4, cost: '0.000000' };
  const result: RunEvent = { type: 'tool.result', tool: 'current_time', output: { iso: 'x' } };
  const progress = (agentId: string) => ({
    transcript: toolExchange,
    activeAgentId: agentId,
    inputTokens: 3,
    outputTokens: 4,
    cost: 0n,
  });

  it('stores its steps, its events in order and the transcript together', async () => {
    const { agent, run } = await runningRun('Round Ok');
    await commitRound(t.api.deps, run.id, {
      steps: [step(run.id, agent.id, 0), step(run.id, agent.id, 1)],
      events: [usage, result],
      progress: progress(agent.id),
      watch: [agent.id],
    });
    const after = await stored(run.id);
    expect(after.steps.map((s) => [s.index, s.kind])).toEqual([
      [0, 'model'],
      [1, 'tool'],
    ]);
    expect(after.events.map((e) => e.type)).toEqual(['usage', 'tool.result']);
    expect(after.row?.transcript).toEqual(toolExchange);
    expect(after.row?.inputTokens).toBe(3);
  });

  it('a step that cannot be stored takes its events and the transcript with it', async () => {
    const { agent, run } = await runningRun('Round Fails');
    // Two steps with one index: the unique index refuses the INSERT mid-transaction.
    const failed = commitRound(t.api.deps, run.id, {
      steps: [step(run.id, agent.id, 0), step(run.id, agent.id, 0)],
      events: [usage, result],
      progress: progress(agent.id),
      watch: [agent.id],
    });
    await expect(failed).rejects.toThrow();
    const after = await stored(run.id);
    expect(after.steps).toEqual([]);
    expect(after.events).toEqual([]);
    expect(after.row?.transcript).toEqual([{ role: 'user', content: 'go' }]);
    expect(after.row?.inputTokens).toBe(0);
  });

  it('a run a sweeper took back stores nothing from its old worker (RunLost)', async () => {
    // A sweeper got there first (here: failed it as interrupted too often).
    const { agent, run } = await runningRun('Round Lost', 'failed');
    const lost = commitRound(t.api.deps, run.id, {
      steps: [step(run.id, agent.id, 0)],
      events: [usage],
      progress: progress(agent.id),
      watch: [agent.id],
    });
    await expect(lost).rejects.toBeInstanceOf(RunLost);
    const after = await stored(run.id);
    expect(after.steps).toEqual([]);
    expect(after.events).toEqual([]);
    expect(after.row?.status).toBe('failed');
    expect(after.row?.transcript).toEqual([{ role: 'user', content: 'go' }]);
  });
});

describe('resuming after a crash mid-round', () => {
  it('continues after the stored steps; a subscriber resuming by lastEventId gets each later event once, in order', async () => {
    const { c, agent, run } = await runningRun('Crash Mid Round');
    // What a killed worker leaves: round 1 committed (2 steps, its events, the transcript),
    // round 2 interrupted after its live events went out.
    await commitRound(t.api.deps, run.id, {
      steps: [step(run.id, agent.id, 0), step(run.id, agent.id, 1)],
      events: [
        { type: 'run.started' },
        { type: 'step.started', step: 0, agentId: agent.id },
        { type: 'usage', inputTokens: 1, outputTokens: 1, cost: '0.000000' },
        { type: 'tool.called', tool: 'current_time', input: {} },
        { type: 'tool.result', tool: 'current_time', output: { iso: 'x' } },
      ],
      progress: {
        transcript: toolExchange,
        activeAgentId: agent.id,
        inputTokens: 1,
        outputTokens: 1,
        cost: 0n,
      },
      watch: [agent.id],
    });
    await publishRunEvent(t.api.deps, run.id, { type: 'step.started', step: 2, agentId: agent.id });
    const orphan = await publishRunEvent(t.api.deps, run.id, { type: 'text.delta', text: 'par' });
    await t.api.deps.db
      .update(runs)
      .set({ heartbeatAt: new Date(Date.now() - 120_000) })
      .where(eq(runs.id, run.id));

    fake.script({ kind: 'reply', chunks: ['re', 'sumed'] });
    const subscription = (await c.runs.onProgress({
      runId: run.id,
      lastEventId: String(orphan.id),
    })) as AsyncIterable<[string, { type: string; step?: number; text?: string }]>;
    const seen: Array<[string, { type: string; step?: number; text?: string }]> = [];
    const reading = (async () => {
      for await (const item of subscription) {
        seen.push(item);
        if (item[1].type === 'run.completed') break;
      }
    })();
    expect(await t.api.deps.runner.sweep()).toBe(1);
    const done = await settled(c, run.id);
    await reading;

    expect(done).toMatchObject({ status: 'succeeded', output: 'resumed' });
    // Numbered after the stored steps, not over them; the interrupted round left no step.
    expect(done.steps.map((s) => [s.index, s.kind])).toEqual([
      [0, 'model'],
      [1, 'tool'],
      [2, 'model'],
    ]);
    // The model got the saved tool exchange: round 1 was not redone.
    const mine = fake.requests.filter((r) => JSON.stringify(r.system).includes('Crash Mid Round'));
    expect(mine).toHaveLength(1);
    expect(JSON.stringify(mine[0]?.messages)).toContain('toolu_1');

    const log = await t.api.deps.bus.readAfter(runTopic(run.id), orphan.id, 100);
    expect(log.map((e) => [e.type, e.payload.step ?? e.payload.text ?? null])).toEqual([
      ['run.started', null],
      ['step.started', 2],
      ['text.delta', 're'],
      ['text.delta', 'sumed'],
      ['usage', null],
      ['run.completed', null],
    ]);
    // The subscriber: exactly these ids, each once, in order.
    expect(seen.map(([id]) => id)).toEqual(log.map((e) => String(e.id)));
    const ids = log.map((e) => e.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
  });
});

describe('batched progress events', () => {
  it('many deltas while a flush is in flight: each stored once, in order, before usage', async () => {
    const { c, projectId } = await projectWith(t, 'Many Deltas');
    const agent = await c.agents.create({
      projectId,
      name: 'Talker',
      instructions: 'x',
      model: MODEL,
    });
    const chunks = Array.from({ length: 60 }, (_, i) => `${i} `);
    fake.script({ kind: 'reply', chunks });
    const run = await settled(c, (await c.runs.start({ agentId: agent.id, input: 'go' })).id);
    expect(run.output).toBe(chunks.join(''));
    const all = await events(t, run.id);
    expect(all.map((e) => e.type)).toEqual([
      'run.started',
      'step.started',
      ...chunks.map(() => 'text.delta'),
      'usage',
      'run.completed',
    ]);
    expect(
      all.filter((e) => e.type === 'text.delta').map((e) => (e as { text?: string }).text),
    ).toEqual(chunks);
  });

  it('a run cancelled mid-round keeps the steps it did and ends with run.cancelled last', async () => {
    const { c, projectId } = await projectWith(t, 'Cancel Mid Round');
    const agent = await c.agents.create({
      projectId,
      name: 'Clock',
      instructions: 'x',
      model: MODEL,
      tools: ['current_time'],
    });
    fake.script(
      { kind: 'tool-use', calls: [{ name: 'current_time', input: {} }] },
      { kind: 'hang', chunks: ['Thinking'] },
    );
    const started = await c.runs.start({ agentId: agent.id, input: 'go' });
    await expect.poll(() => fake.requests.length, { timeout: 5000 }).toBe(2);
    await expect
      .poll(async () => (await events(t, started.id)).some((e) => e.type === 'text.delta'))
      .toBe(true);
    await c.runs.cancel({ runId: started.id });
    const run = await settled(c, started.id);
    expect(run.status).toBe('cancelled');
    // The interrupted model step is stored with the run's end.
    expect(run.steps.map((s) => s.kind)).toEqual(['model', 'tool']);
    const types = (await events(t, run.id)).map((e) => e.type);
    expect(types).toEqual([
      'run.started',
      'step.started',
      'usage',
      'tool.called',
      'tool.result',
      'step.started',
      'text.delta',
      'run.cancelled',
    ]);
  });
});

describe('the agents are read once per run, and again only when they change', () => {
  it('an agent deactivated during a step stops the run at the next step', async () => {
    const { c, projectId } = await projectWith(t, 'Deactivated');
    const agent = await c.agents.create({
      projectId,
      name: 'Clock',
      instructions: 'x',
      model: MODEL,
      tools: ['current_time'],
    });
    fake.script(
      {
        kind: 'tool-use',
        chunks: ['Checking', ' the', ' time'],
        chunkDelayMs: 150,
        calls: [{ name: 'current_time', input: {} }],
      },
      { kind: 'reply', chunks: ['never asked'] },
    );
    const started = await c.runs.start({ agentId: agent.id, input: 'go' });
    await expect.poll(() => fake.requests.length, { timeout: 5000 }).toBe(1);
    await c.agents.update({ agentId: agent.id, status: 'inactive' });
    const run = await settled(c, started.id);
    expect(run).toMatchObject({ status: 'failed', error: { appCode: 'run.agent_unavailable' } });
    expect(run.steps.map((s) => s.kind)).toEqual(['model', 'tool']);
    expect(fake.requests).toHaveLength(1);
  });

  it('an instruction edited mid-run reaches the next model step', async () => {
    const { c, projectId } = await projectWith(t, 'Edited');
    const agent = await c.agents.create({
      projectId,
      name: 'Clock',
      instructions: 'first instructions',
      model: MODEL,
      tools: ['current_time'],
    });
    fake.script(
      {
        kind: 'tool-use',
        chunks: ['Checking', ' the', ' time'],
        chunkDelayMs: 150,
        calls: [{ name: 'current_time', input: {} }],
      },
      { kind: 'reply', chunks: ['done'] },
    );
    const started = await c.runs.start({ agentId: agent.id, input: 'go' });
    await expect.poll(() => fake.requests.length, { timeout: 5000 }).toBe(1);
    await c.agents.update({ agentId: agent.id, instructions: 'second instructions' });
    const run = await settled(c, started.id);
    expect(run.status).toBe('succeeded');
    expect(String(fake.requests[0]?.system)).toContain('first instructions');
    expect(String(fake.requests[1]?.system)).toContain('second instructions');
  });
});
