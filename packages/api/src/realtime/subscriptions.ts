import { AppError } from '../lib/errors';
import type { SocketConnection } from './connections';

/**
 * Caps live subscriptions per socket: takes a slot before the stream starts and gives it
 * back however the stream ends (client unsubscribes, socket closes, error).
 */
export async function* withSubscriptionSlot<T>(
  connection: SocketConnection | null,
  stream: AsyncGenerator<T>,
): AsyncGenerator<T> {
  if (connection) {
    if (connection.subscriptions >= connection.maxSubscriptions) {
      await stream.return(undefined);
      throw new AppError(
        'realtime.too_many_subscriptions',
        `At most ${connection.maxSubscriptions} subscriptions per connection`,
      );
    }
    connection.subscriptions++;
  }
  try {
    yield* stream;
  } finally {
    if (connection) connection.subscriptions--;
  }
}
