import type { Lifecycle } from '../../lib/lifecycle';
import type { Gateway } from './gateway';

const SWEEP_INTERVAL_MS = 15_000;

/**
 * Model calls a dead process left in flight hold budget reservations nobody will settle:
 * released once before the instance serves, then periodically.
 */
export async function startGatewayJobs(opts: {
  life: Lifecycle;
  gateway: Pick<Gateway, 'sweep'>;
}): Promise<void> {
  await opts.life.nowAndEvery(SWEEP_INTERVAL_MS, 'reservation sweep', () => opts.gateway.sweep());
}
