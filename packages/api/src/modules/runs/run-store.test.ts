import { asc, eq, inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApi, type TestApi } from '../../testing';
import { agents as agentsTable } from '../agents/agents.table';
import { loadRunAgents } from './run-agents';
import { claimRuns, commitRound, finishRun, RunLost, type StepRow } from './run-store';
import { runSteps, runs } from './runs.table';
import { events, projectWith } from './testing';

let t: TestApi;
beforeAll(async () => {
  t = await createTestApi({ MOCK_MODEL_ENABLED: 'true' });
  // Only these tests claim: the api's own runner would take queued runs of any project.
  await t.api.deps.runner.close();
});
afterAll(() => t.close());

/** A run row marked running without a worker: only these tests write to it. */
async function runningRun(name: string) {
  const { c, projectId } = await projectWith(t, name);
  const agent = await c.agents.create({ projectId, name, instructions: 'x', model: 'mock-echo' });
  const [row] = await t.api.deps.db
    .insert(runs)
    .values({
      projectId,
      agentId: agent.id,
      activeAgentId: agent.id,
      input: 'go',
      status: 'running',
      startedAt: new Date(),
      heartbeatAt: new Date(),
    })
    .returning();
  if (!row) throw new Error('no run');
  return { run: row, agentId: agent.id, projectId };
}

const step = (runId: string, agentId: string, index: number): StepRow => ({
  runId,
  agentId,
  index,
  kind: 'tool',
  input: { expression: '2+2' },
  output: 'a JSON string',
  error: null,
  cost: 12n,
  startedAt: new Date('2026-01-02T03:04:05.678Z'),
  finishedAt: new Date('2026-01-02T03:04:05.999Z'),
});

const stepsOf = (runId: string) =>
  t.api.deps.db
    .select()
    .from(runSteps)
    .where(eq(runSteps.runId, runId))
    .orderBy(asc(runSteps.index));

describe('run store writes, all or none', () => {
  it("a round's steps, events and progress are stored together, with the agents' stamp", async () => {
    const { run, agentId, projectId } = await runningRun('Round');
    const agents = await loadRunAgents(t.api.deps.db, projectId, agentId);
    const seen: string[] = [];
    const off = t.api.deps.bus.listen(`run:${run.id}`, (e) => seen.push(e.type));
    const stamp = await commitRound(t.api.deps, run.id, {
      steps: [step(run.id, agentId, 0), { ...step(run.id, agentId, 1), input: undefined }],
      events: [
        { type: 'step.started', step: 0, agentId },
        { type: 'tool.result', tool: 'calculator', output: 4 },
      ],
      progress: {
        transcript: [{ role: 'user', content: 'go' }],
        activeAgentId: agentId,
        inputTokens: 3,
        outputTokens: 4,
        cost: 5n,
      },
      watch: agents.watch,
    });
    expect(stamp).toBe(agents.stamp);
    const stored = await stepsOf(run.id);
    expect(stored).toMatchObject([
      {
        index: 0,
        kind: 'tool',
        input: { expression: '2+2' },
        output: 'a JSON string',
        error: null,
        inputTokens: 0,
        outputTokens: 0,
        cost: 12n,
        startedAt: new Date('2026-01-02T03:04:05.678Z'),
        finishedAt: new Date('2026-01-02T03:04:05.999Z'),
      },
      { index: 1, input: null },
    ]);
    expect(await events(t, run.id)).toEqual([
      { type: 'step.started', step: 0, agentId },
      { type: 'tool.result', tool: 'calculator', output: 4 },
    ]);
    const [row] = await t.api.deps.db.select().from(runs).where(eq(runs.id, run.id));
    expect(row).toMatchObject({ inputTokens: 3, outputTokens: 4, cost: 5n, status: 'running' });
    expect(row?.transcript).toEqual([{ role: 'user', content: 'go' }]);
    await expect.poll(() => seen).toEqual(['step.started', 'tool.result']);
    off();
  });

  it('a round of a run no longer running here stores nothing and throws RunLost', async () => {
    const { run, agentId } = await runningRun('Lost');
    // Ended elsewhere (a cancel, a sweeper) while this execution still ran it.
    await t.api.deps.db.update(runs).set({ status: 'cancelled' }).where(eq(runs.id, run.id));
    const round = commitRound(t.api.deps, run.id, {
      steps: [step(run.id, agentId, 0)],
      events: [{ type: 'step.started', step: 0, agentId }],
      progress: {
        transcript: [{ role: 'user', content: 'changed' }],
        activeAgentId: agentId,
        inputTokens: 9,
        outputTokens: 9,
        cost: 9n,
      },
      watch: [agentId],
    });
    await expect(round).rejects.toBeInstanceOf(RunLost);
    expect(await stepsOf(run.id)).toEqual([]);
    expect(await events(t, run.id)).toEqual([]);
    const [row] = await t.api.deps.db.select().from(runs).where(eq(runs.id, run.id));
    expect(row).toMatchObject({ status: 'cancelled', inputTokens: 0, transcript: [] });
  });

  it('a run ends once: a second end, or one after a sweeper, stores nothing', async () => {
    const { run, agentId } = await runningRun('Ends');
    await finishRun(
      t.api.deps,
      run.id,
      { status: 'succeeded', output: 'done' },
      { type: 'run.completed', output: 'done' },
      { steps: [step(run.id, agentId, 0)], events: [{ type: 'step.started', step: 0, agentId }] },
    );
    await finishRun(
      t.api.deps,
      run.id,
      { status: 'failed', error: { appCode: 'run.interrupted', message: 'late' } },
      { type: 'run.failed', appCode: 'run.interrupted', message: 'late' },
      { steps: [step(run.id, agentId, 1)] },
    );
    const [row] = await t.api.deps.db.select().from(runs).where(eq(runs.id, run.id));
    expect(row).toMatchObject({ status: 'succeeded', output: 'done', heartbeatAt: null });
    expect((await stepsOf(run.id)).map((s) => s.index)).toEqual([0]);
    expect((await events(t, run.id)).map((e) => e.type)).toEqual(['step.started', 'run.completed']);
  });
});

describe('claiming queued runs', () => {
  it('racing claimers never run more than the limit; each claim comes back as stored', async () => {
    const { run: busy, agentId, projectId } = await runningRun('Claims');
    // Another project's running run: its agent is not among those read with the claim.
    const { agentId: elsewhere } = await runningRun('Claims elsewhere');
    // Six queued runs, oldest first; the second was resumed (two steps stored already).
    const base = Date.parse('2026-01-02T03:04:05.000Z');
    const queued = await t.api.deps.db
      .insert(runs)
      .values(
        Array.from({ length: 6 }, (_, i) => ({
          projectId,
          agentId,
          activeAgentId: agentId,
          input: `queued ${i}`,
          status: 'queued' as const,
          cost: 9_007_199_254_740_993n,
          output: 'a JSON string',
          transcript: [{ role: 'user' as const, content: `queued ${i}` }],
          createdAt: new Date(base + i),
        })),
      )
      .returning();
    await t.api.deps.db
      .insert(runSteps)
      .values([step(queued[1]?.id ?? '', agentId, 0), step(queued[1]?.id ?? '', agentId, 1)]);
    // Five claimers at once, each allowing two running: one runs already, so one more.
    const rounds = await Promise.all(
      Array.from({ length: 5 }, () =>
        claimRuns({ db: t.api.deps.db, maxConcurrent: 2, projectId }),
      ),
    );
    const claimed = rounds.flat();
    expect(claimed.map((r) => r.id)).toEqual([queued[0]?.id]);
    const statuses = await t.api.deps.db
      .select({ id: runs.id, status: runs.status })
      .from(runs)
      .where(eq(runs.projectId, projectId));
    expect(
      statuses
        .filter((r) => r.status === 'running')
        .map((r) => r.id)
        .sort(),
    ).toEqual([busy.id, queued[0]?.id].sort());
    // The claimed row is the stored row, decoded as a select decodes it.
    const [stored] = await t.api.deps.db
      .select()
      .from(runs)
      .where(eq(runs.id, queued[0]?.id ?? ''));
    const { stepCount, agents: starting, ...row } = claimed[0] ?? { stepCount: -1, agents: [] };
    expect(row).toEqual(stored);
    expect(row).toMatchObject({ cost: 9_007_199_254_740_993n, output: 'a JSON string' });
    expect(stepCount).toBe(0);
    const agentRows = await t.api.deps.db
      .select()
      .from(agentsTable)
      .where(inArray(agentsTable.id, [agentId, elsewhere]));
    expect(starting).toEqual(agentRows.filter((a) => a.id === agentId));

    // The running one ends: the next claim takes the resumed run, with its steps counted.
    await t.api.deps.db.update(runs).set({ status: 'succeeded' }).where(eq(runs.id, busy.id));
    const [resumed, ...more] = await claimRuns({ db: t.api.deps.db, maxConcurrent: 2, projectId });
    expect(more).toEqual([]);
    expect(resumed).toMatchObject({ id: queued[1]?.id, status: 'running', stepCount: 2 });
    expect(resumed?.startedAt).toBeInstanceOf(Date);
    // A project at its limit claims nothing.
    expect(await claimRuns({ db: t.api.deps.db, maxConcurrent: 2, projectId })).toEqual([]);
  });
});
