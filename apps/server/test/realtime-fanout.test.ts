import { closeClient, createClient, type SmartSpaceClient } from '@smartspace/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { socketStreamCounts } from '../../../packages/api/src/realtime/socket-stream';
import { startTestServer, type TestServer } from './harness';
import { rawSocket, WebSocketImpl } from './sockets';
import { watch, within } from './subscriptions';

/**
 * Socket subscriptions write their data frames themselves, one serialisation per event for
 * every subscriber (packages/api/src/realtime/socket-stream.ts). What that design could
 * break, checked through the real server and tRPC's own client: the frames decode as the
 * adapter's would, every subscriber gets every event once and in order, resuming still
 * works, a slow socket holds up nobody else, and a stop or an access change ends delivery.
 */
let server: TestServer;
const clients: SmartSpaceClient[] = [];
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await Promise.all(clients.map((c) => closeClient(c)));
  await server.close();
});

const password = 'correct horse battery staple';
let seq = 0;

async function user(name: string) {
  const client = createClient({ url: `${server.origin}/trpc`, WebSocket: WebSocketImpl });
  clients.push(client);
  const session = await client.auth.register.mutate({
    email: `${name.toLowerCase()}-${++seq}-${Date.now()}@example.com`,
    password,
    name,
  });
  return { client, token: session.accessToken, email: session.user.email, id: session.user.id };
}

async function conversation(owner: SmartSpaceClient) {
  const project = await owner.projects.create.mutate({ name: 'Fan-out' });
  const c = await owner.chat.conversations.create.mutate({ projectId: project.id });
  return { projectId: project.id, conversationId: c.id };
}

/** Publishes on the conversation's topic as the app does (chat.dto conversationTopic). */
function publish(conversationId: string, payload: Record<string, unknown>) {
  return server.api.deps.bus.publish({
    topic: `conversation:${conversationId}`,
    type: 'bench.note',
    payload,
  });
}

type Frame = {
  id?: unknown;
  jsonrpc?: string;
  result?: { type: string; id?: string; data?: unknown };
};
const frames = (messages: unknown[]) => messages.filter((m): m is Frame => typeof m === 'object');
const dataFrames = (messages: unknown[], id: unknown) =>
  frames(messages).filter((m) => m.id === id && m.result?.type === 'data');

describe('socket fan-out', () => {
  it('tRPC clients get every event once, in order, as tracked events (served directly)', async () => {
    const owner = await user('Owner');
    const { projectId, conversationId } = await conversation(owner.client);
    const viewers = await Promise.all([user('Viewer1'), user('Viewer2'), user('Viewer3')]);
    for (const v of viewers) {
      await owner.client.projects.members.add.mutate({ projectId, email: v.email, role: 'viewer' });
    }
    const direct = socketStreamCounts.direct;
    const subs = await Promise.all(
      [owner, ...viewers].map(async ({ client }) => {
        const w = watch((h) => client.chat.onEvent.subscribe({ conversationId }, h));
        await within(w.started, 10_000, 'started');
        return { w };
      }),
    );
    expect(socketStreamCounts.direct - direct).toBe(subs.length);
    // Concurrent publishers: the bus delivers in id order, so must every socket.
    const published = await Promise.all(
      Array.from({ length: 120 }, (_, n) => publish(conversationId, { n, text: `é ${n} "q"` })),
    );
    // In id (commit) order, each as the event's type and payload.
    const expected = [...published]
      .sort((a, b) => a.id - b.id)
      .map((e) => ({ type: 'bench.note', ...e.payload }));
    for (const { w } of subs) {
      await expect.poll(() => w.data.length, { timeout: 15_000 }).toBe(published.length);
      expect(w.data).toEqual(expected);
      w.stop();
    }
  });

  it('raw frames are exactly what tRPC writes (string id, jsonrpc), and resume with lastEventId', async () => {
    const owner = await user('Raw');
    const { conversationId } = await conversation(owner.client);
    const first = await publish(conversationId, { n: 0 });
    const sock = rawSocket(server.origin, { token: owner.token });
    await sock.opened;
    const subId = 'sub "α"';
    sock.ws.send(
      JSON.stringify({
        id: subId,
        jsonrpc: '2.0',
        method: 'subscription',
        params: { path: 'chat.onEvent', input: { conversationId }, lastEventId: String(first.id) },
      }),
    );
    const texts: string[] = [];
    sock.ws.on('message', (d) => texts.push(String(d)));
    await expect
      .poll(() => frames(sock.messages).some((m) => m.id === subId && m.result?.type === 'started'))
      .toBe(true);
    // Published while the subscription is live; the one before lastEventId is not resent.
    const later = [];
    for (let n = 1; n <= 20; n++) later.push(await publish(conversationId, { n }));
    await expect.poll(() => dataFrames(sock.messages, subId).length).toBe(20);
    const data = texts.filter((t) => t.includes('"type":"data"'));
    expect(data).toEqual(
      later.map((e) =>
        JSON.stringify({
          id: subId,
          jsonrpc: '2.0',
          result: {
            type: 'data',
            data: { id: String(e.id), data: { type: 'bench.note', ...e.payload } },
            id: String(e.id),
          },
        }),
      ),
    );

    // Resuming from the 10th: exactly the 10 after it, then live ones, no gap, no repeat.
    const resumeAfter = later[9]?.id as number;
    const again = rawSocket(server.origin, { token: owner.token });
    await again.opened;
    again.ws.send(
      JSON.stringify({
        id: 7,
        method: 'subscription',
        params: {
          path: 'chat.onEvent',
          input: { conversationId, lastEventId: String(resumeAfter) },
        },
      }),
    );
    const racing = Array.from({ length: 15 }, (_, i) => publish(conversationId, { n: 100 + i }));
    const live = await Promise.all(racing);
    const want = [...later.slice(10), ...live].map((e) => e.id).sort((a, b) => a - b);
    await expect.poll(() => dataFrames(again.messages, 7).length).toBe(want.length);
    await new Promise((r) => setTimeout(r, 200));
    expect(dataFrames(again.messages, 7).map((m) => Number(m.result?.id))).toEqual(want);
    sock.ws.close();
    again.ws.close();
  });

  it('a socket that does not read holds up nobody; it gets everything, in order, once it reads', async () => {
    const owner = await user('Slow');
    const { conversationId } = await conversation(owner.client);
    const slow = rawSocket(server.origin, { token: owner.token });
    const fast = rawSocket(server.origin, { token: owner.token });
    await Promise.all([slow.opened, fast.opened]);
    const subscribe = JSON.stringify({
      id: 1,
      method: 'subscription',
      params: { path: 'chat.onEvent', input: { conversationId } },
    });
    slow.ws.send(subscribe);
    fast.ws.send(subscribe);
    const started = (s: typeof slow) =>
      frames(s.messages).some((m) => m.id === 1 && m.result?.type === 'started');
    await expect.poll(() => started(slow) && started(fast)).toBe(true);
    // Stop reading: the server's writes to it back up in its socket buffers.
    (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const text = 'x'.repeat(16 * 1024);
    const count = 120; // ~2 MB, far more than the socket buffers hold
    const t0 = Date.now();
    const published = [];
    for (let n = 0; n < count; n++) published.push(await publish(conversationId, { n, text }));
    await expect.poll(() => dataFrames(fast.messages, 1).length, { timeout: 15_000 }).toBe(count);
    const fastDone = Date.now() - t0;
    expect(dataFrames(slow.messages, 1).length).toBeLessThan(count);
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    await expect.poll(() => dataFrames(slow.messages, 1).length, { timeout: 15_000 }).toBe(count);
    const ids = published.map((e) => String(e.id));
    expect(dataFrames(slow.messages, 1).map((m) => m.result?.id)).toEqual(ids);
    expect(dataFrames(fast.messages, 1).map((m) => m.result?.id)).toEqual(ids);
    expect(fastDone).toBeLessThan(15_000);
    slow.ws.close();
    fast.ws.close();
  });

  it('a stopped subscription gets nothing more; its id can be used again', async () => {
    const owner = await user('Stop');
    const { conversationId } = await conversation(owner.client);
    const sock = rawSocket(server.origin, { token: owner.token });
    await sock.opened;
    const subscribe = JSON.stringify({
      id: 3,
      method: 'subscription',
      params: { path: 'chat.onEvent', input: { conversationId } },
    });
    sock.ws.send(subscribe);
    await expect
      .poll(() => frames(sock.messages).some((m) => m.id === 3 && m.result?.type === 'started'))
      .toBe(true);
    await publish(conversationId, { n: 1 });
    await expect.poll(() => dataFrames(sock.messages, 3).length).toBe(1);
    sock.ws.send(JSON.stringify({ id: 3, method: 'subscription.stop' }));
    await expect
      .poll(() => frames(sock.messages).some((m) => m.id === 3 && m.result?.type === 'stopped'))
      .toBe(true);
    await publish(conversationId, { n: 2 });
    await new Promise((r) => setTimeout(r, 300));
    expect(dataFrames(sock.messages, 3).length).toBe(1);
    // The same id again: a new subscription, live from now.
    const before = sock.messages.length;
    sock.ws.send(subscribe);
    await expect
      .poll(() =>
        frames(sock.messages.slice(before)).some((m) => m.id === 3 && m.result?.type === 'started'),
      )
      .toBe(true);
    const third = await publish(conversationId, { n: 3 });
    await expect.poll(() => dataFrames(sock.messages, 3).length).toBe(2);
    expect(dataFrames(sock.messages, 3)[1]?.result?.id).toBe(String(third.id));
    sock.ws.close();
  });

  it('a member removed mid-stream gets no event after the removal, and access_revoked', async () => {
    const owner = await user('Owner2');
    const member = await user('Member2');
    const { projectId, conversationId } = await conversation(owner.client);
    await owner.client.projects.members.add.mutate({
      projectId,
      email: member.email,
      role: 'viewer',
    });
    const sock = rawSocket(server.origin, { token: member.token });
    await sock.opened;
    sock.ws.send(
      JSON.stringify({
        id: 1,
        method: 'subscription',
        params: { path: 'chat.onEvent', input: { conversationId } },
      }),
    );
    await expect
      .poll(() => frames(sock.messages).some((m) => m.id === 1 && m.result?.type === 'started'))
      .toBe(true);
    await publish(conversationId, { n: 1 });
    await expect.poll(() => dataFrames(sock.messages, 1).length).toBe(1);
    await owner.client.projects.members.remove.mutate({ projectId, userId: member.id });
    await expect
      .poll(() =>
        frames(sock.messages).find(
          (m) => m.id === 1 && (m as { error?: unknown }).error !== undefined,
        ),
      )
      .toMatchObject({ error: { data: { appCode: 'projects.access_revoked' } } });
    await publish(conversationId, { n: 2 });
    await new Promise((r) => setTimeout(r, 300));
    expect(dataFrames(sock.messages, 1).length).toBe(1);
    sock.ws.close();
  });
});
