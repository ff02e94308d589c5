import type { Lifecycle } from '../lib/lifecycle';
import type { EventBus } from './bus';

/** Drops events past their retention; at least every ten minutes, sooner for short retention. */
export function startEventJobs(opts: {
  life: Lifecycle;
  bus: Pick<EventBus, 'prune'>;
  retentionMs: number;
}): void {
  const { bus, retentionMs } = opts;
  opts.life.every(Math.min(retentionMs, 600_000), 'event retention', () => bus.prune(retentionMs));
}
