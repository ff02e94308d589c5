import type { Lifecycle } from '../../lib/lifecycle';
import type { ReplyRunner } from './replies';

const SWEEP_INTERVAL_MS = 15_000;

/**
 * Replies a dead process left streaming are failed and their reservations released: once
 * before the instance serves, then periodically.
 */
export async function startReplyJobs(opts: {
  life: Lifecycle;
  replies: Pick<ReplyRunner, 'sweep'>;
}): Promise<void> {
  await opts.life.nowAndEvery(SWEEP_INTERVAL_MS, 'reply sweep', () => opts.replies.sweep());
}
