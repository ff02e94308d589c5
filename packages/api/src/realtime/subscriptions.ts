import type { Db } from '../db/client';
import type { EventBus, StoredEvent } from '../events/bus';
import { streamTopic, TopicStream } from '../events/stream';
import { AppError } from '../lib/errors';
import type { Membership } from '../modules/projects/projects.service';
import { type ProjectRole, roleAtLeast } from '../modules/projects/roles';
import { toTRPCError } from '../trpc';
import { currentRole } from './access';
import type { SocketConnection } from './connections';
import { SocketTopicStream } from './socket-stream';

/**
 * Wraps every subscription's stream: caps live subscriptions per socket (a slot taken
 * before the stream starts, given back however it ends) and maps app errors raised while
 * streaming (e.g. events.expired) to tRPC errors. A topic stream on a socket is served by
 * SocketTopicStream, which does the same and writes its frames itself.
 */
export function withSubscriptionSlot<T>(
  connection: SocketConnection | null,
  stream: AsyncGenerator<T>,
): AsyncGenerator<T> {
  if (connection && stream instanceof TopicStream) {
    return new SocketTopicStream({
      connection,
      access: null,
      stream: stream.spec,
      fallback: () => slotted(connection, stream),
    }) as AsyncGenerator<T>;
  }
  return slotted(connection, stream);
}

async function* slotted<T>(
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
 * Runs a project-scoped stream only while its member keeps `minRole` in the project: a removal,
 * a lower role or the project's deletion (announced to every instance) ends it with
 * `projects.access_revoked`, leaving the socket and its other subscriptions alone. Without a
 * socket (in-process callers) there is nothing to watch.
 */
async function* whileAllowed<T>(
  opts: {
    db: Db;
    connection: SocketConnection | null;
    membership: Membership;
    minRole: ProjectRole;
    signal: AbortSignal | undefined;
  },
  start: (signal: AbortSignal | undefined) => AsyncGenerator<T>,
): AsyncGenerator<T> {
  if (!opts.connection) {
    yield* start(opts.signal);
    return;
  }
  const { projectId, userId } = opts.membership;
  const revoked = new AbortController();
  const unwatch = opts.connection.access.watch({ projectId, userId, minRole: opts.minRole }, () =>
    revoked.abort(),
  );
  try {
    // A change committed after the procedure checked access but before the watch began was
    // announced before anyone here listened for it: look once more, now that we do.
    const role = await currentRole(opts.db, projectId, userId);
    if (!role || !roleAtLeast(role, opts.minRole)) revoked.abort();
    if (!revoked.signal.aborted) {
      const signal = opts.signal ? AbortSignal.any([opts.signal, revoked.signal]) : revoked.signal;
      for await (const item of start(signal)) {
        // Checked per item: events already queued when access ended are never sent.
        if (revoked.signal.aborted) break;
        yield item;
      }
    }
    if (revoked.signal.aborted) {
      throw new AppError(
        'projects.access_revoked',
        'Your access to this project changed; this subscription has ended',
      );
    }
  } finally {
    unwatch();
  }
}

/**
 * A resumable subscription to one topic of a project's event log, capped per socket and ended
 * when the caller's access no longer allows it: what every `on*` procedure (chat.onEvent,
 * runs.onProgress, budgets.onAlert) is made of. `minRole` is the role its procedure requires.
 */
export function liveTopic<T>(opts: {
  ctx: { bus: EventBus; db: Db; connection: SocketConnection | null; membership: Membership };
  minRole: ProjectRole;
  topic: string;
  lastEventId: string | null | undefined;
  signal: AbortSignal | undefined;
  map: (event: StoredEvent) => T | null;
}) {
  const { ctx } = opts;
  const stream = {
    bus: ctx.bus,
    topic: opts.topic,
    lastEventId: opts.lastEventId,
    signal: opts.signal,
    map: opts.map,
  };
  const generators = () =>
    slotted(
      ctx.connection,
      whileAllowed(
        {
          db: ctx.db,
          connection: ctx.connection,
          membership: ctx.membership,
          minRole: opts.minRole,
          signal: opts.signal,
        },
        (signal) => streamTopic({ ...stream, signal }),
      ),
    );
  if (!ctx.connection) return generators();
  const { projectId, userId } = ctx.membership;
  return new SocketTopicStream({
    connection: ctx.connection,
    access: { db: ctx.db, projectId, userId, minRole: opts.minRole },
    stream,
    fallback: generators,
  });
}
