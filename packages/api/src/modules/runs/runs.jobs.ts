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
  const sweep = () => opts.runner.sweep();
  await opts.life.run('run sweep', sweep);
  opts.life.every(SWEEP_INTERVAL_MS, 'run sweep', sweep);
}
