import type { EventBus, StoredEvent } from '../events/bus';
import { streamTopic } from '../events/stream';
import { AppError } from '../lib/errors';
import { toTRPCError } from '../trpc';
import type { SocketConnection } from './connections';

/**
 * Wraps every subscription's stream: caps live subscriptions per socket (a slot taken
 * before the stream starts, given back however it ends) and maps app errors raised while
 * streaming (e.g. events.expired) to tRPC errors.
 */
export async function* withSubscriptionSlot<T>(
  connection: SocketConnection | null,
  stream: AsyncGenerator<T>,
): AsyncGenerator<T> {
  if (connection) {
    if (connection.subscriptions >= connection.maxSubscriptions) {
      await stream.return(undefined);
      throw toTRPCError(
        new AppError(
          'realtime.too_many_subscriptions',
          `At most ${connection.maxSubscriptions} subscriptions per connection`,
        ),
      );
    }
    connection.subscriptions++;
  }
  try {
    yield* stream;
  } catch (e) {
    // A subscription's stream runs after its middleware returned, so map app errors here.
    throw e instanceof AppError ? toTRPCError(e) : e;
  } finally {
    if (connection) connection.subscriptions--;
  }
}

/**
 * A resumable subscription to one topic of the event log, capped per socket: what every
 * `on*` procedure (chat.onEvent, runs.onProgress, budgets.onAlert) is made of.
 */
export function liveTopic<T>(opts: {
  ctx: { bus: EventBus; connection: SocketConnection | null };
  topic: string;
  lastEventId: string | null | undefined;
  signal: AbortSignal | undefined;
  map: (event: StoredEvent) => T | null;
}) {
  return withSubscriptionSlot(
    opts.ctx.connection,
    streamTopic({
      bus: opts.ctx.bus,
      topic: opts.topic,
      lastEventId: opts.lastEventId,
      signal: opts.signal,
      map: opts.map,
    }),
  );
}
