import type { Lifecycle } from '../../lib/lifecycle';
import type { Runner } from './runner';

const SWEEP_INTERVAL_MS = 15_000;

/**
 * Runs a dead process left in flight are failed and their reservations released: once
 * before the instance serves, then periodically.
 */
export async function startRunJobs(opts: {
  life: Lifecycle;
  runner: Pick<Runner, 'sweep'>;
}): Promise<void> {
  await opts.life.nowAndEvery(SWEEP_INTERVAL_MS, 'run sweep', () => opts.runner.sweep());
}
