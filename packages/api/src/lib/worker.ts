import { sql } from 'drizzle-orm';
import type { DatabaseHandle, Db } from '../db/client';
import type { Logger } from './logger';

/** The abort reason on close: work goes back (or fails as interrupted), not cancelled. */
export const SHUTDOWN = 'shutdown';
const CANCEL = 'cancel';

/** Whether work stopped because its process is closing rather than because someone cancelled. */
export const isShutdown = (signal: AbortSignal) => signal.reason === SHUTDOWN;

export interface WorkerOptions {
  db: Db;
  log: Logger;
  /** NOTIFY channel that carries a cancel to whichever process runs the job. */
  cancelChannel: string;
  /** Log field naming a job's id (e.g. runId), and the line logged when a job throws. */
  idField: string;
  crashMessage: string;
}

export interface Worker {
  /** Runs a job in the background; its signal aborts on cancel or on close. */
  start(id: string, job: (signal: AbortSignal) => Promise<void>, after?: () => void): void;
  readonly size: number;
  /** Cancels wherever the job runs: here directly, elsewhere through NOTIFY. */
  cancel(id: string): Promise<void>;
  /**
   * Settles work a dead process left behind (found by a stale heartbeat), skipping what
   * runs here; returns how many `settle` reported as handled.
   */
  sweep<T extends { id: string }>(
    stale: T[],
    settle: (row: T) => Promise<boolean>,
  ): Promise<number>;
  /** Stops listening, aborts every job with SHUTDOWN and waits for each to store its outcome. */
  close(): Promise<void>;
}

/**
 * The in-process half of background work that lives in a table row: an in-flight map of
 * jobs, a cancel channel shared by every instance, and shutdown. The row's heartbeat (see
 * `startHeartbeat`) tells other instances' sweeps that the job still has a process.
 */
export async function createWorker(handle: DatabaseHandle, opts: WorkerOptions): Promise<Worker> {
  const inFlight = new Map<string, { abort: AbortController; done: Promise<void> }>();
  const unlisten = await handle.listen(opts.cancelChannel, (id) =>
    inFlight.get(id)?.abort.abort(CANCEL),
  );

  return {
    start(id, job, after) {
      const abort = new AbortController();
      const done = job(abort.signal)
        .catch((err: unknown) => opts.log.error({ err, [opts.idField]: id }, opts.crashMessage))
        .finally(() => {
          inFlight.delete(id);
          after?.();
        });
      inFlight.set(id, { abort, done });
    },

    get size() {
      return inFlight.size;
    },

    async cancel(id) {
      const local = inFlight.get(id);
      if (local) local.abort.abort(CANCEL);
      else await opts.db.execute(sql`select pg_notify(${opts.cancelChannel}, ${id})`);
    },

    async sweep(stale, settle) {
      let settled = 0;
      for (const row of stale) {
        if (inFlight.has(row.id)) continue;
        if (await settle(row)) settled++;
      }
      return settled;
    },

    async close() {
      await unlisten();
      const running = [...inFlight.values()];
      for (const r of running) r.abort.abort(SHUTDOWN);
      await Promise.allSettled(running.map((r) => r.done));
    },
  };
}

/** Touches a job's row every `ms` until stopped; a missed beat is retried by the next one. */
export function startHeartbeat(beat: () => Promise<unknown>, ms: number): () => void {
  const timer = setInterval(() => {
    beat().catch(() => {});
  }, ms);
  timer.unref();
  return () => clearInterval(timer);
}
