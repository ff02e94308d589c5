import { closeClient, createClient, memorySessionStore } from '@smartspace/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestServer, type TestServer } from './harness';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ CORS_ORIGINS: 'https://app.example.com' });
});
afterAll(() => server.close());

const password = 'correct horse battery staple';
let seq = 0;

async function signedIn(name = 'Socket') {
  const store = memorySessionStore();
  const client = createClient({
    url: `${server.origin}/trpc`,
    session: store,
    WebSocket,
  });
  const session = await client.auth.register.mutate({
    email: `${name.toLowerCase()}-${++seq}-${Date.now()}@example.com`,
    password,
    name,
  });
  return { client, store, session };
}

type Event = { type: string; [k: string]: unknown };

/** Subscribes and collects events until `until` says stop; resolves with them. */
function collect(
  client: ReturnType<typeof createClient>,
  input: { conversationId: string; lastEventId?: string },
  until: (e: Event, all: Event[]) => boolean,
) {
  const events: Event[] = [];
  const ids: string[] = [];
  let unsubscribe = () => {};
  const done = new Promise<{ events: Event[]; ids: string[] }>((resolve, reject) => {
    const sub = client.chat.onEvent.subscribe(input, {
      onData(tracked) {
        events.push(tracked.data as Event);
        ids.push(tracked.id);
        if (until(tracked.data as Event, events)) {
          sub.unsubscribe();
          resolve({ events, ids });
        }
      },
      onError: reject,
    });
    unsubscribe = () => sub.unsubscribe();
  });
  return { done, events, ids, unsubscribe: () => unsubscribe() };
}

describe('chat over WebSocket', () => {
  it('a member sees the message and every delta of the reply, which equals the stored reply', async () => {
    const { client, session } = await signedIn('Streamer');
    const project = await client.projects.create.mutate({ name: 'Live' });
    const conversation = await client.chat.conversations.create.mutate({ projectId: project.id });
    const sub = collect(
      client,
      { conversationId: conversation.id },
      (e) => e.type === 'reply.completed',
    );
    // Give the subscription a moment to start on the server before sending.
    await new Promise((r) => setTimeout(r, 200));
    const sent = await client.chat.send.mutate({
      conversationId: conversation.id,
      content: 'hello over the wire',
    });
    const { events } = await sub.done;
    expect(events.map((e) => e.type)[0]).toBe('message.created');
    expect(events[0]?.message).toMatchObject({ id: sent.message.id, authorId: session.user.id });
    expect(events[1]).toEqual({ type: 'reply.started', replyId: sent.replyId });
    const text = events
      .filter((e) => e.type === 'reply.delta')
      .map((e) => e.text)
      .join('');
    const completed = events.at(-1) as unknown as { message: { content: string; id: string } };
    expect(completed.message.id).toBe(sent.replyId);
    expect(text).toBe(completed.message.content);
    expect(text).toBe('Echo: hello over the wire');
    const stored = await client.chat.messages.list.query({ conversationId: conversation.id });
    expect(stored.items.map((m) => [m.role, m.content])).toEqual([
      ['user', 'hello over the wire'],
      ['assistant', text],
    ]);
    await closeClient(client);
  });
});

describe('resume after a dropped socket', () => {
  it('the client reconnects with lastEventId: received text equals the stored reply exactly', async () => {
    const { client } = await signedIn('Resumer');
    const project = await client.projects.create.mutate({ name: 'Resume' });
    const conversation = await client.chat.conversations.create.mutate({ projectId: project.id });
    let upgrades = 0;
    const onUpgrade = () => upgrades++;
    server.app.server.on('upgrade', onUpgrade);
    const sub = collect(
      client,
      { conversationId: conversation.id },
      (e) => e.type === 'reply.completed',
    );
    await new Promise((r) => setTimeout(r, 200));
    const words = Array.from({ length: 120 }, (_, i) => `word${i}`).join(' ');
    await client.chat.send.mutate({ conversationId: conversation.id, content: words });
    // Cut every socket once a few deltas have arrived, mid-stream.
    await expect
      .poll(() => sub.events.filter((e) => e.type === 'reply.delta').length)
      .toBeGreaterThan(2);
    const cutAt = sub.events.length;
    for (const socket of server.app.websocketServer.clients) socket.terminate();
    const { events, ids } = await sub.done;
    server.app.server.off('upgrade', onUpgrade);

    expect(upgrades).toBeGreaterThanOrEqual(2); // it really reconnected
    expect(events.length).toBeGreaterThan(cutAt);
    const numeric = ids.map(Number);
    expect(numeric).toEqual([...numeric].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(ids.length); // nothing twice
    const text = events
      .filter((e) => e.type === 'reply.delta')
      .map((e) => e.text)
      .join('');
    const stored = await client.chat.messages.list.query({ conversationId: conversation.id });
    expect(text).toBe(stored.items[1]?.content);
    expect(text).toBe(`Echo: ${words}`); // nothing missing
    await closeClient(client);
  });
});
