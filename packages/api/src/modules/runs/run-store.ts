import { randomUUID } from 'node:crypto';
import { and, eq, lt, type SQL, sql } from 'drizzle-orm';
import type { ChatTurn } from '../../ai/provider';
import { type Db, rowsOf } from '../../db/client';
import { rowFromJson } from '../../db/json-row';
import type { EventBus, StoredEvent } from '../../events/bus';
import type { AgentRow } from '../agents/agents.service';
import { agents } from '../agents/agents.table';
import { chatLinkOf, mirrorToChat } from './chat-mirror';
import { agentsStampSql } from './run-agents';
import { type RunEvent, runTopic } from './runs.dto';
import { type RunRow, runSteps, runs } from './runs.table';

/**
 * Every read and write the run worker makes to the runs tables. Each write to a run is
 * guarded by `status = 'running'`: a sweeper (here or in another instance) may have ended
 * or re-queued the run meanwhile, and the first to get there wins.
 */

/** What a run has accumulated so far: saved with every round, so a resume continues it. */
export interface RunProgress {
  transcript: ChatTurn[];
  activeAgentId: string;
  inputTokens: number;
  outputTokens: number;
  cost: bigint;
}

/**
 * Several events of one run, in order, as one write (bus.publishMany), in the caller's
 * transaction when `tx` is given (without it the bus opens its own: the per-topic lock it
 * takes only orders publishers while that transaction lasts). A run writing a reply in a
 * conversation with its agent also writes them to the reply, in the same transaction
 * (chat-mirror.ts).
 */
export async function publishRunEvents(
  deps: { db: Db; bus: EventBus },
  runId: string,
  list: readonly RunEvent[],
  tx?: Db,
): Promise<StoredEvent[]> {
  if (list.length === 0) return [];
  const publish = (db: Db | undefined) =>
    deps.bus.publishMany({
      topic: runTopic(runId),
      events: list.map(({ type, ...payload }) => ({ type, payload })),
      db,
    });
  // In the caller's transaction when there is one: on PGlite (one connection) a query outside
  // it would wait for it forever.
  const link = await chatLinkOf(tx ?? deps.db, runId);
  if (!link) return publish(tx);
  const both = async (t: Db) => {
    const stored = await publish(t);
    await mirrorToChat(t, deps.bus, link, runId, list);
    return stored;
  };
  return tx ? both(tx) : deps.db.transaction(both);
}

export async function publishRunEvent(
  deps: { db: Db; bus: EventBus },
  runId: string,
  event: RunEvent,
  tx?: Db,
): Promise<StoredEvent> {
  const [stored] = await publishRunEvents(deps, runId, [event], tx);
  if (!stored) throw new Error('publishing returned no event');
  return stored;
}

/**
 * Moves queued runs to 'running', per project up to `maxConcurrent` running at once, under a
 * per-project advisory lock, so the limit holds across instances.
 */
export async function claimRuns(opts: {
  db: Db;
  maxConcurrent: number;
  projectId?: string | undefined;
}): Promise<ClaimedRun[]> {
  const { db } = opts;
  const projectIds = opts.projectId
    ? [opts.projectId]
    : (
        await db
          .selectDistinct({ projectId: runs.projectId })
          .from(runs)
          .where(eq(runs.status, 'queued'))
          .limit(100)
      ).map((r) => r.projectId);
  const claimed: ClaimedRun[] = [];
  for (const p of projectIds) {
    claimed.push(...(await claimInProject(db, p, opts.maxConcurrent)));
  }
  return claimed;
}

/**
 * A claimed run, with the number of steps it already stored (a resume continues after them)
 * and agent rows read with the claim (its active and its own agent among them).
 */
export type ClaimedRun = RunRow & { stepCount: number; agents: AgentRow[] };

/**
 * One statement (smartspace_claim_runs, migration 0027): under the project's advisory lock,
 * count the running, pick the queued in order, claim them, and read the agents the
 * project's running runs start with (their active and their own: the claimed ones among
 * them, maybe a few more, never fewer). One round trip and one commit.
 */
async function claimInProject(
  db: Db,
  projectId: string,
  maxConcurrent: number,
): Promise<ClaimedRun[]> {
  const [row] = rowsOf<{ claim: ClaimJson }>(
    await db.execute(
      sql`select smartspace_claim_runs(${projectId}::uuid, ${maxConcurrent}::int,
        ${new Date().toISOString()}::timestamptz) as claim`,
    ),
  );
  if (!row) throw new Error('claiming runs returned no row');
  const claim = typeof row.claim === 'string' ? (JSON.parse(row.claim) as ClaimJson) : row.claim;
  if (claim.runs.length === 0) return [];
  const agentRows = claim.agents.map((a) => rowFromJson(agents, a));
  return claim.runs.map((r) => ({
    ...rowFromJson(runs, r),
    stepCount: Number(r.step_count),
    agents: agentRows,
  }));
}

interface ClaimJson {
  runs: Array<Record<string, unknown>>;
  agents: Array<Record<string, unknown>>;
}

/** Writes that end a run: its last steps and events, with its final state. */
export interface RunEnding {
  steps?: StepRow[];
  events?: RunEvent[];
}

/**
 * Ends a run once: its pending steps and events, then the final event, committed with the
 * final state at once. A run that is no longer 'running' here (ended or taken back by a
 * sweeper meanwhile) is left as it is.
 */
export async function finishRun(
  deps: { db: Db; bus: EventBus },
  runId: string,
  patch: Partial<typeof runs.$inferInsert>,
  event: RunEvent,
  ending: RunEnding = {},
) {
  const guard = (db: Db) =>
    db
      .update(runs)
      .set({ ...patch, finishedAt: new Date(), heartbeatAt: null })
      .where(and(eq(runs.id, runId), eq(runs.status, 'running')))
      .returning({ id: runs.id });
  try {
    await writeGuarded(deps, runId, guard, ending.steps ?? [], [...(ending.events ?? []), event]);
  } catch (err) {
    // Nothing stored: whoever ended or took the run wrote its end.
    if (!(err instanceof RunLost)) throw err;
  }
}

/**
 * A running run's writes, all or none: `guard` (the UPDATE of its row, `status = 'running'`
 * checked, returning one row), its step rows and its events. Throws RunLost, having stored
 * nothing, when the guard finds the run gone. A run that writes no chat reply stores them in
 * one statement (no transaction, one round trip); one that does, in a transaction that also
 * writes the reply (chat-mirror.ts).
 */
async function writeGuarded<T>(
  deps: { db: Db; bus: EventBus },
  runId: string,
  guard: (db: Db) => PgUpdateReturning<T>,
  steps: StepRow[],
  list: RunEvent[],
): Promise<T> {
  const link = await chatLinkOf(deps.db, runId);
  if (link) {
    return deps.db.transaction((tx) =>
      guardedWrites(guard(tx), [
        steps.length > 0 ? () => tx.insert(runSteps).values(steps) : null,
        () => publishRunEvents(deps, runId, list, tx),
      ]),
    );
  }
  const row = await deps.bus.publishGuarded({
    topic: runTopic(runId),
    events: list.map(({ type, ...payload }) => ({ type, payload })),
    guard: guard(deps.db).getSQL(),
    also: steps.length > 0 ? [insertStepsIfGuarded(steps)] : [],
  });
  if (!row) throw new RunLost('the run is no longer running here');
  return row as T;
}

type PgUpdateReturning<T> = PromiseLike<T[]> & { getSQL(): SQL };

/**
 * The INSERT of step rows, made only when the statement's guard (`g`) returned its row. The
 * rows travel as one JSON parameter; the defaults drizzle would fill in are filled here.
 */
function insertStepsIfGuarded(steps: StepRow[]): SQL {
  const json = JSON.stringify(
    steps.map((s) => ({
      id: s.id ?? randomUUID(),
      run_id: s.runId,
      index: s.index,
      agent_id: s.agentId,
      kind: s.kind,
      input: s.input ?? null,
      output: s.output ?? null,
      error: s.error ?? null,
      input_tokens: s.inputTokens ?? 0,
      output_tokens: s.outputTokens ?? 0,
      cost: String(s.cost ?? 0n),
      started_at: s.startedAt.toISOString(),
      finished_at: s.finishedAt.toISOString(),
    })),
  );
  return sql`insert into ${runSteps} (id, run_id, index, agent_id, kind, input, output, error,
      input_tokens, output_tokens, cost, started_at, finished_at)
    select x.* from jsonb_to_recordset(${json}::jsonb) as x(id uuid, run_id uuid, index int,
      agent_id uuid, kind run_step_kind, input jsonb, output jsonb, error text,
      input_tokens int, output_tokens int, cost bigint, started_at timestamptz,
      finished_at timestamptz)
    where exists (select 1 from g)`;
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** Starts `work` now (a drizzle query is sent when `then` is called) and never rejects. */
function settle<T>(work: PromiseLike<T>): Promise<Settled<T>> {
  return new Promise((resolve) => {
    work.then(
      (value) => resolve({ ok: true, value }),
      (error: unknown) => resolve({ ok: false, error }),
    );
  });
}

/**
 * The writes of a running run's transaction sent together, one round trip: `guard` (the
 * UPDATE of its row, `status = 'running'` checked) is issued first, then each of `writes` in
 * order, and the connection runs them in that order. When the guard finds the run gone,
 * RunLost rolls back whatever the writes did (one may even have failed because of it: the
 * guard decides).
 */
async function guardedWrites<T>(
  guard: PromiseLike<T[]>,
  writes: Array<(() => PromiseLike<unknown>) | null>,
): Promise<T> {
  const first = settle(guard);
  const rest = writes.map((w) => (w ? settle(w()) : null));
  const checked = await first;
  const outcomes = await Promise.all(rest);
  if (!checked.ok) throw checked.error;
  const row = checked.value[0];
  if (row === undefined) throw new RunLost('the run is no longer running here');
  for (const o of outcomes) if (o && !o.ok) throw o.error;
  return row;
}

/** This process no longer owns the run: a sweeper ended it or gave it to another instance. */
export class RunLost extends Error {
  override name = 'RunLost';
}

/**
 * One round of a run (a model step and the tool steps it asked for, or a final answer that
 * needs correcting) committed at once: its step rows, its deferred events and the progress
 * that a resume starts from. Either all of it is stored or none, so a resumed run redoes a
 * round whole and its transcript always matches its steps. Throws RunLost (and stores
 * nothing) when the run is no longer 'running'. Returns `agentsStamp` of `watch` (see
 * run-agents.ts), read in the same statement, so no step reads the agents again.
 */
export async function commitRound(
  deps: { db: Db; bus: EventBus },
  runId: string,
  round: { steps: StepRow[]; events: RunEvent[]; progress: RunProgress; watch: string[] },
): Promise<string> {
  const guard = (db: Db) =>
    db
      .update(runs)
      .set({ ...round.progress, heartbeatAt: new Date() })
      .where(and(eq(runs.id, runId), eq(runs.status, 'running')))
      // Named: the single statement hands the row back as JSON.
      .returning({ stamp: agentsStampSql(round.watch).as('stamp') });
  const row = await writeGuarded(deps, runId, guard, round.steps, round.events);
  return row.stamp;
}

export const touchRun = (db: Db, runId: string) =>
  db
    .update(runs)
    .set({ heartbeatAt: new Date() })
    .where(and(eq(runs.id, runId), eq(runs.status, 'running')));

/** Back to the queue (with its progress, when it has any) to be resumed by any instance. */
export const requeueRun = (
  db: Db,
  runId: string,
  patch: Partial<RunProgress> & { resumes?: number },
) =>
  db
    .update(runs)
    .set({ status: 'queued', ...patch, heartbeatAt: null })
    .where(and(eq(runs.id, runId), eq(runs.status, 'running')));

/** Runs whose heartbeat is older than `staleMs`: their process died (or stalls). */
export const staleRuns = (db: Db, staleMs: number) =>
  db
    .select({ id: runs.id, resumes: runs.resumes })
    .from(runs)
    .where(and(eq(runs.status, 'running'), lt(runs.heartbeatAt, new Date(Date.now() - staleMs))));

/** A step row as the run worker writes it (its run and index included). */
export type StepRow = typeof runSteps.$inferInsert;
