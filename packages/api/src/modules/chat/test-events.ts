import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import { createCaller } from '../../index';
import type { TestApi } from '../../testing';
import { type ChatEvent, conversationTopic } from './chat.dto';

/** Helpers for chat tests: a conversation's live events, as a transport would read them. */

const PROBE = 'test.probe';

export type Tracked = { id: string; event: ChatEvent };

/** Subscribes as a transport would (with an abort signal), collecting events meanwhile. */
export async function subscribe(api: TestApi, token: string, conv: string, lastEventId?: string) {
  const ac = new AbortController();
  const ctx = api.api.createContext({ token, ip: '127.0.0.1', requestId: randomUUID() });
  const it = await createCaller(ctx, { signal: ac.signal }).chat.onEvent({
    conversationId: conv,
    lastEventId,
  });
  const stream = it as AsyncIterable<[string, ChatEvent]>;
  const all: Tracked[] = [];
  const done = (async () => {
    for await (const [id, event] of stream) all.push({ id, event });
  })();
  const sub = {
    items: () => all.filter((x) => (x.event.type as string) !== PROBE),
    events: () => sub.items().map((x) => x.event),
    /** Waits for a matching event and returns it. */
    async until(pred: (e: ChatEvent) => boolean): Promise<Tracked> {
      await expect.poll(() => all.some((x) => pred(x.event)), { timeout: 5_000 }).toBe(true);
      return all.find((x) => pred(x.event)) as Tracked;
    },
    close() {
      ac.abort();
      return done;
    },
  };
  // Without lastEventId the listener attaches on the first pull: once a probe event arrives,
  // the subscription is provably live and nothing sent afterwards can be missed.
  if (lastEventId === undefined) {
    await api.api.deps.bus.publish({ topic: conversationTopic(conv), type: PROBE, payload: {} });
    await sub.until((e) => (e.type as string) === PROBE);
  }
  return sub;
}

/** The event that ends reply `replyId`, whether it completed or failed. */
export const endOf = (replyId: string) => (e: ChatEvent) =>
  (e.type === 'reply.completed' && e.message.id === replyId) ||
  (e.type === 'reply.failed' && e.replyId === replyId);
