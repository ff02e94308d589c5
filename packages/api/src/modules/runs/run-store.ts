import { and, eq, getTableColumns, lt, sql } from 'drizzle-orm';
import type { ChatTurn } from '../../ai/provider';
import type { Db } from '../../db/client';
import type { EventBus, StoredEvent } from '../../events/bus';
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
 * Moves queued runs to 'running', per project up to `maxConcurrent` running at once. A
 * transaction under a per-project advisory lock, so the limit holds across instances.
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

/** A claimed run, with the number of steps it already stored (a resume continues after them). */
export type ClaimedRun = RunRow & { stepCount: number };

function claimInProject(db: Db, projectId: string, maxConcurrent: number): Promise<ClaimedRun[]> {
  return db.transaction(async (tx) => {
    // The lock first, in its own statement: the UPDATE's snapshot then sees every claim
    // committed by the previous holder.
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`runs:${projectId}`}))`);
    // Count, pick and claim in one statement (one round trip instead of three).
    const free = sql`greatest(0, ${maxConcurrent}::int - (select count(*) from ${runs} r
      where r.project_id = ${projectId} and r.status = 'running'))`;
    return tx
      .update(runs)
      .set({
        status: 'running',
        startedAt: sql`coalesce(${runs.startedAt}, now())`,
        heartbeatAt: new Date(),
      })
      .where(
        sql`${runs.id} in (select q.id from ${runs} q
          where q.project_id = ${projectId} and q.status = 'queued'
          order by q.created_at, q.id limit ${free})`,
      )
      .returning({
        ...getTableColumns(runs),
        // `${runs}.id`, qualified: drizzle writes an UPDATE's own columns bare ("id"), which
        // inside this subquery would name run_steps.id.
        stepCount:
          sql<number>`(select count(*) from ${runSteps} s where s.run_id = ${runs}.id)`.mapWith(
            Number,
          ),
      });
  });
}

/** Writes that end a run: its last steps and events, with its final state. */
export interface RunEnding {
  steps?: StepRow[];
  events?: RunEvent[];
}

/**
 * Ends a run once: its pending steps and events, then the final event, committed with the
 * final state in one transaction. A run that is no longer 'running' here (ended or taken
 * back by a sweeper meanwhile) is left as it is.
 */
export async function finishRun(
  deps: { db: Db; bus: EventBus },
  runId: string,
  patch: Partial<typeof runs.$inferInsert>,
  event: RunEvent,
  ending: RunEnding = {},
) {
  await deps.db.transaction(async (tx) => {
    const [row] = await tx
      .update(runs)
      .set({ ...patch, finishedAt: new Date(), heartbeatAt: null })
      .where(and(eq(runs.id, runId), eq(runs.status, 'running')))
      .returning({ id: runs.id });
    if (!row) return;
    if (ending.steps?.length) await tx.insert(runSteps).values(ending.steps);
    await publishRunEvents(deps, runId, [...(ending.events ?? []), event], tx);
  });
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
  return deps.db.transaction(async (tx) => {
    const [row] = await tx
      .update(runs)
      .set({ ...round.progress, heartbeatAt: new Date() })
      .where(and(eq(runs.id, runId), eq(runs.status, 'running')))
      .returning({ stamp: agentsStampSql(round.watch) });
    if (!row) throw new RunLost('the run is no longer running here');
    if (round.steps.length > 0) await tx.insert(runSteps).values(round.steps);
    await publishRunEvents(deps, runId, round.events, tx);
    return row.stamp;
  });
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
