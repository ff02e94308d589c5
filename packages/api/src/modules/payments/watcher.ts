import type { ChainClient } from '../../chain/chain';
import type { AdvisoryLock, DatabaseHandle } from '../../db/client';
import { AppError } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import { type ScanResult, scanDeposits } from './scan';

// Any constant works; it only has to be the same for every instance of this app.
const WATCHER_LOCK = 727_274_006;

export interface DepositWatcher {
  /** One pass; `null` when another instance is the active watcher. Passes never overlap. */
  tick(): Promise<ScanResult | null>;
  /** Runs a pass now, then every `intervalMs`. */
  start(intervalMs: number): void;
  /** Stops the timer, waits for a pass in flight and gives up the leadership. */
  stop(): Promise<void>;
  /** Whether this instance holds the watcher's lock (it is the active watcher). */
  active(): boolean;
  /** Blocks between the chain's head and the last block scanned, at the last pass here. */
  blocksBehind(): number | null;
}

/**
 * The background deposit watcher. Several instances may run one each; the one holding a
 * session-level advisory lock is active, the others wait and take over if it dies. The
 * lock saves work, not money: passes are idempotent, so a brief overlap is harmless.
 */
export function createDepositWatcher(deps: {
  database: DatabaseHandle;
  chain: ChainClient;
  log: Logger;
}): DepositWatcher {
  let lock: AdvisoryLock | null = null;
  let queue: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;

  async function lead(): Promise<boolean> {
    if (lock && (await lock.held())) return true;
    if (lock) {
      deps.log.warn({}, 'deposit watcher lost its lock');
      await lock.release().catch(() => {});
      lock = null;
    }
    lock = await deps.database.tryAdvisoryLock(WATCHER_LOCK);
    return lock !== null;
  }

  let last: ScanResult | null = null;
  async function pass(): Promise<ScanResult | null> {
    if (stopped || !(await lead())) return null;
    last = await scanDeposits({ db: deps.database.db, chain: deps.chain, log: deps.log });
    return last;
  }

  function tick(): Promise<ScanResult | null> {
    const run = queue.then(pass);
    queue = run.catch(() => {});
    return run;
  }

  function background() {
    tick().catch((err: unknown) => {
      if (err instanceof AppError) deps.log.warn({ code: err.code }, err.message);
      else deps.log.error({ err }, 'deposit watcher pass failed');
    });
  }

  return {
    tick,
    start(intervalMs) {
      if (timer || stopped) return;
      background();
      timer = setInterval(background, intervalMs);
      timer.unref();
    },
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = null;
      await queue;
      await lock?.release();
      lock = null;
    },
    active: () => lock !== null,
    blocksBehind: () => (last ? Math.max(0, last.head - last.scannedTo) : null),
  };
}
