import type { ChainClient } from '../../chain/chain';
import type { Config } from '../../config';
import type { DatabaseHandle } from '../../db/client';
import type { Lifecycle } from '../../lib/lifecycle';
import type { Logger } from '../../lib/logger';
import { createDepositWatcher, type DepositWatcher } from './watcher';

/**
 * Starts the deposit watcher when DEPOSIT_ADDRESS is set (null otherwise). One instance at
 * a time scans (advisory lock); the others stand by to take over.
 */
export function startPaymentJobs(opts: {
  life: Lifecycle;
  database: DatabaseHandle;
  chain: ChainClient;
  config: Config['chain'];
  log: Logger;
}): DepositWatcher | null {
  if (!opts.config.depositAddress) return null;
  const watcher = createDepositWatcher({
    database: opts.database,
    chain: opts.chain,
    log: opts.log,
  });
  watcher.start(opts.config.watchIntervalMs);
  opts.life.defer('deposit watcher', () => watcher.stop());
  return watcher;
}
