import type { DatabaseHandle } from '../../db/client';
import { createWorker } from '../../lib/worker';
import { expireApprovals } from './approvals';
import type { RunLoopDeps } from './run-context';
import { type ApprovalSettings, executeRun } from './run-loop';
import { claimRuns, finishRun, requeueRun, staleRuns } from './run-store';
import type { RunFailureCode } from './runs.errors';

const CANCEL_CHANNEL = 'smartspace_run_cancel';
export const STALE_RUN_MS = 30_000;
const MAX_RESUMES = 2;
const POLL_MS = 2_000;

export interface RunnerDeps extends RunLoopDeps {
  maxConcurrentPerProject: number;
  approvals: ApprovalSettings;
}

/**
 * Executes agent runs (run-loop.ts): claims queued runs up to a per-project concurrency
 * limit, and resumes runs whose process died from their last completed step (at most
 * MAX_RESUMES times).
 */
export async function createRunner(handle: DatabaseHandle, deps: RunnerDeps) {
  const { db } = deps;
  const worker = await createWorker(handle, {
    db,
    log: deps.log,
    cancelChannel: CANCEL_CHANNEL,
    idField: 'runId',
    crashMessage: 'run worker crashed',
  });
  let closed = false;

  function kick(projectId?: string) {
    if (closed) return;
    void claimRuns({ db, maxConcurrent: deps.maxConcurrentPerProject, projectId })
      .then((rows) => {
        for (const run of rows) {
          worker.start(
            run.id,
            (signal) => executeRun(deps, run, signal, deps.approvals),
            () => kick(run.projectId),
          );
        }
      })
      .catch((err: unknown) => deps.log.error({ err }, 'claiming runs failed'));
  }

  const poll = setInterval(() => kick(), POLL_MS);
  poll.unref();

  return {
    /** Looks for queued runs of a project now (after runs.start). */
    kick,

    /** Cancels wherever the run executes: here directly, elsewhere through NOTIFY. */
    cancel: (runId: string) => worker.cancel(runId),

    /**
     * Runs left 'running' by a dead process (stale heartbeat) go back to the queue to resume
     * from their last completed step, or fail once they have been resumed too often; runs
     * whose approval nobody decided in time fail run.approval_expired.
     */
    async sweep(staleMs = STALE_RUN_MS): Promise<number> {
      const n = await worker.sweep(await staleRuns(db, staleMs), (r) => recover(deps, r));
      if (n > 0) kick();
      return n + (await expireApprovals(deps));
    },

    get running() {
      return worker.size;
    },

    /** Stops claiming; runs in flight go back to the queue with their progress. */
    async close() {
      closed = true;
      clearInterval(poll);
      await worker.close();
    },
  };
}

/** A stale run goes back to the queue, or fails once it was resumed too often. */
async function recover(deps: RunnerDeps, r: { id: string; resumes: number }): Promise<boolean> {
  if (r.resumes < MAX_RESUMES) {
    await requeueRun(deps.db, r.id, { resumes: r.resumes + 1 });
    return true;
  }
  const appCode: RunFailureCode = 'run.interrupted';
  const message = 'The run was interrupted too many times';
  await finishRun(
    deps,
    r.id,
    { status: 'failed', error: { appCode, message } },
    { type: 'run.failed', appCode, message },
  );
  return true;
}

export type Runner = Awaited<ReturnType<typeof createRunner>>;
