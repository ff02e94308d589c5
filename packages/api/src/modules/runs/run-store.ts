import { and, count, eq, inArray, lt, sql } from 'drizzle-orm';
import type { ChatTurn } from '../../ai/provider';
import type { Db } from '../../db/client';
import type { EventBus } from '../../events/bus';
import { type RunEvent, runTopic } from './runs.dto';
import { type RunRow, runSteps, runs } from './runs.table';

/**
 * Every read and write the run worker makes to the runs tables. Each write to a run is
 * guarded by `status = 'running'`: a sweeper (here or in another instance) may have ended
 * or re-queued the run meanwhile, and the first to get there wins.
 */

/** What a run has accumulated so far: saved after every step so a resume continues it. */
export interface RunProgress {
  transcript: ChatTurn[];
  activeAgentId: string;
  inputTokens: number;
  outputTokens: number;
  cost: bigint;
}

export const publishRunEvent = (
  deps: { db: Db; bus: EventBus },
  runId: string,
  event: RunEvent,
  tx: Db = deps.db,
) => {
  const { type, ...payload } = event;
  return deps.bus.publish({ topic: runTopic(runId), type, payload, db: tx });
};

/**
 * Moves queued runs to 'running', per project up to `maxConcurrent` running at once. A
 * transaction under a per-project advisory lock, so the limit holds across instances.
 */
export async function claimRuns(opts: {
  db: Db;
  maxConcurrent: number;
  projectId?: string | undefined;
}): Promise<RunRow[]> {
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
  const claimed: RunRow[] = [];
  for (const p of projectIds) {
    claimed.push(...(await claimInProject(db, p, opts.maxConcurrent)));
  }
  return claimed;
}

function claimInProject(db: Db, projectId: string, maxConcurrent: number): Promise<RunRow[]> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`runs:${projectId}`}))`);
    const [running] = await tx
      .select({ n: count() })
      .from(runs)
      .where(and(eq(runs.projectId, projectId), eq(runs.status, 'running')));
    const free = maxConcurrent - (running?.n ?? 0);
    if (free <= 0) return [];
    const queued = await tx
      .select({ id: runs.id })
      .from(runs)
      .where(and(eq(runs.projectId, projectId), eq(runs.status, 'queued')))
      .orderBy(runs.createdAt, runs.id)
      .limit(free);
    if (queued.length === 0) return [];
    return tx
      .update(runs)
      .set({
        status: 'running',
        startedAt: sql`coalesce(${runs.startedAt}, now())`,
        heartbeatAt: new Date(),
      })
      .where(
        inArray(
          runs.id,
          queued.map((q) => q.id),
        ),
      )
      .returning();
  });
}

/** Ends a run once, publishing its final event in the same transaction. */
export async function finishRun(
  deps: { db: Db; bus: EventBus },
  runId: string,
  patch: Partial<typeof runs.$inferInsert>,
  event: RunEvent,
) {
  await deps.db.transaction(async (tx) => {
    const [row] = await tx
      .update(runs)
      .set({ ...patch, finishedAt: new Date(), heartbeatAt: null })
      .where(and(eq(runs.id, runId), eq(runs.status, 'running')))
      .returning({ id: runs.id });
    if (row) await publishRunEvent(deps, runId, event, tx);
  });
}

export const touchRun = (db: Db, runId: string) =>
  db
    .update(runs)
    .set({ heartbeatAt: new Date() })
    .where(and(eq(runs.id, runId), eq(runs.status, 'running')));

export const saveProgress = (db: Db, runId: string, progress: RunProgress) =>
  db.update(runs).set(progress).where(eq(runs.id, runId));

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

export const staleRuns = (db: Db, staleMs: number) =>
  db
    .select()
    .from(runs)
    .where(and(eq(runs.status, 'running'), lt(runs.heartbeatAt, new Date(Date.now() - staleMs))));

export async function countSteps(db: Db, runId: string): Promise<number> {
  const [existing] = await db
    .select({ n: count() })
    .from(runSteps)
    .where(eq(runSteps.runId, runId));
  return existing?.n ?? 0;
}

export type StepRecord = Omit<typeof runSteps.$inferInsert, 'runId' | 'index'>;

export const saveStep = (db: Db, runId: string, index: number, step: StepRecord) =>
  db.insert(runSteps).values({ ...step, runId, index });
