import { type TrackedEnvelope, tracked } from '@trpc/server';
import { AppError } from '../lib/errors';
import type { EventBus, StoredEvent } from './bus';

export const BACKLOG_PAGE = 500;

export function parseEventId(lastEventId: string | undefined | null): number | null {
  if (lastEventId === undefined || lastEventId === null) return null;
  if (!/^\d{1,15}$/.test(lastEventId)) {
    throw new AppError(
      'events.invalid_id',
      'lastEventId must be an id received from this subscription',
    );
  }
  return Number(lastEventId);
}

export interface TopicStreamSpec<T> {
  bus: EventBus;
  topic: string;
  lastEventId?: string | null | undefined;
  signal: AbortSignal | undefined;
  /** Shapes a stored event for the wire; return null to skip it. */
  map: (event: StoredEvent) => T | null;
}

/**
 * A resumable subscription to one topic (the trpc `next-sse-chat` pattern): attach the live
 * listener first, then replay the stored backlog after `lastEventId`, de-duplicate by id,
 * and yield `tracked(id, event)` so the client can resume from the last id it saw.
 */
async function* topicGenerator<T>(opts: TopicStreamSpec<T>) {
  let last = parseEventId(opts.lastEventId);
  const queue: StoredEvent[] = [];
  let wake: (() => void) | null = null;
  const off = opts.bus.listen(opts.topic, (e) => {
    queue.push(e);
    wake?.();
  });
  const onAbort = () => wake?.();
  opts.signal?.addEventListener('abort', onAbort);
  try {
    if (last !== null) {
      await opts.bus.assertRetained(last);
      for (;;) {
        const page = await opts.bus.readAfter(opts.topic, last, BACKLOG_PAGE);
        for (const e of page) {
          last = e.id;
          const out = opts.map(e);
          if (out !== null) yield tracked(String(e.id), out);
        }
        if (page.length < BACKLOG_PAGE) break;
      }
    }
    while (!opts.signal?.aborted) {
      const e = queue.shift();
      if (!e) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = null;
        continue;
      }
      if (last !== null && e.id <= last) continue; // already sent from the backlog
      last = e.id;
      const out = opts.map(e);
      if (out !== null) yield tracked(String(e.id), out);
    }
  } finally {
    off();
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * The stream `streamTopic` returns: the generator above, created on the first pull, plus the
 * spec it was made from, so a socket subscription (realtime/socket-stream.ts) can serve the
 * same topic by writing frames itself instead of pulling this generator per event.
 */
export class TopicStream<T> implements AsyncGenerator<TrackedEnvelope<T>, void, unknown> {
  private generator: AsyncGenerator<TrackedEnvelope<T>, void, unknown> | null = null;

  constructor(readonly spec: TopicStreamSpec<T>) {}

  private get started() {
    this.generator ??= topicGenerator(this.spec);
    return this.generator;
  }

  next() {
    return this.started.next();
  }

  return() {
    // Never pulled: nothing was attached; the generator ends without running its body.
    return this.started.return(undefined);
  }

  throw(e: unknown) {
    return this.started.throw(e);
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}

export function streamTopic<T>(opts: TopicStreamSpec<T>): TopicStream<T> {
  return new TopicStream(opts);
}
