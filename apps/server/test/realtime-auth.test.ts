import { closeClient, createClient, memorySessionStore } from '@smartspace/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './harness';
import { rawSocket, WebSocketImpl } from './sockets';

let server: TestServer;
let upgrades = 0;
beforeAll(async () => {
  server = await startTestServer({
    CORS_ORIGINS: 'https://app.example.com',
    WS_MAX_CONNECTIONS_PER_USER: '2',
    WS_MAX_SUBSCRIPTIONS_PER_CONNECTION: '2',
    WS_MAX_PAYLOAD_BYTES: '4096',
  });
  server.app.server.on('upgrade', () => upgrades++);
});
afterAll(() => server.close());

const password = 'correct horse battery staple';
let n = 0;
async function register() {
  const client = createClient({ url: `${server.origin}/trpc`, WebSocket: WebSocketImpl });
  const session = await client.auth.register.mutate({
    email: `ws-auth-${++n}-${Date.now()}@example.com`,
    password,
    name: 'WS',
  });
  const project = await client.projects.create.mutate({ name: 'P' });
  const conversation = await client.chat.conversations.create.mutate({ projectId: project.id });
  return { client, session, conversation };
}

function subscribeError(client: ReturnType<typeof createClient>, conversationId: string) {
  return new Promise<{ code?: string; appCode?: string }>((resolve, reject) => {
    client.chat.onEvent.subscribe(
      { conversationId },
      {
        onData: () => reject(new Error('expected no data')),
        onError: (err) =>
          resolve((err as { data?: { code?: string; appCode?: string } }).data ?? {}),
      },
    );
  });
}

describe('socket authentication', () => {
  it('no token or a bad token: a clear UNAUTHORIZED, and no reconnect loop', async () => {
    const { conversation } = await register();
    for (const token of [null, 'not-a-jwt']) {
      const client = createClient({
        url: `${server.origin}/trpc`,
        WebSocket: WebSocketImpl,
        ...(token ? { getAccessToken: () => token } : {}),
      });
      const before = upgrades;
      expect(await subscribeError(client, conversation.id)).toMatchObject({
        code: 'UNAUTHORIZED',
        appCode: 'auth.unauthenticated',
      });
      await new Promise((r) => setTimeout(r, 1500));
      expect(upgrades - before).toBe(1);
      await closeClient(client);
    }
  });

  it('a conversation of another tenant: NOT_FOUND, as if it did not exist', async () => {
    const victim = await register();
    const intruder = await register();
    expect(await subscribeError(intruder.client, victim.conversation.id)).toMatchObject({
      code: 'NOT_FOUND',
      appCode: 'chat.conversation_not_found',
    });
    await closeClient(intruder.client);
    await closeClient(victim.client);
  });

  it('a foreign Origin is refused at the handshake; an allowed one or none is accepted', async () => {
    const evil = rawSocket(server.origin, { origin: 'https://evil.example.com' });
    await expect(evil.opened).rejects.toThrow('HTTP 403');
    const good = rawSocket(server.origin, { origin: 'https://app.example.com' });
    await good.opened;
    good.ws.close();
    const none = rawSocket(server.origin);
    await none.opened;
    none.ws.close();
    // The web app served by this server connects from the server's own origin.
    const own = rawSocket(server.origin, { origin: server.origin });
    await own.opened;
    own.ws.close();
    // Same host, another port: another origin.
    const port = Number(new URL(server.origin).port);
    const otherPort = rawSocket(server.origin, { origin: `http://127.0.0.1:${port + 1}` });
    await expect(otherPort.opened).rejects.toThrow('HTTP 403');
  });

  it('ending the session (logoutAll) ends open subscriptions within seconds', async () => {
    const store = memorySessionStore();
    const client = createClient({
      url: `${server.origin}/trpc`,
      session: store,
      WebSocket: WebSocketImpl,
    });
    await client.auth.register.mutate({
      email: `revoked-${Date.now()}@example.com`,
      password,
      name: 'R',
    });
    const project = await client.projects.create.mutate({ name: 'R' });
    const conversation = await client.chat.conversations.create.mutate({ projectId: project.id });
    let ended: number | null = null;
    const error = new Promise<{ code?: string }>((resolve) => {
      client.chat.onEvent.subscribe(
        { conversationId: conversation.id },
        {
          onStarted: () => {
            // Revoke from elsewhere: a second sign-in of the same user calls logoutAll.
            void (async () => {
              const other = createClient({ url: `${server.origin}/trpc` });
              const session = await store.get();
              if (!session) throw new Error('no session');
              await other.auth.login.mutate({ email: session.user.email, password });
              ended = Date.now();
              await other.auth.logoutAll.mutate();
            })();
          },
          onError: (err) => resolve((err as { data?: { code?: string } }).data ?? {}),
        },
      );
    });
    expect(await error).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(Date.now() - (ended ?? 0)).toBeLessThan(5000);
    // The failed refresh cleared the session: the client knows it is signed out.
    expect(await store.get()).toBeNull();
    await closeClient(client);
  });
});

describe('socket limits and malformed input', () => {
  it('caps connections per user', async () => {
    const { session } = await register();
    const a = rawSocket(server.origin, { token: session.accessToken });
    const b = rawSocket(server.origin, { token: session.accessToken });
    await Promise.all([a.opened, b.opened]);
    await new Promise((r) => setTimeout(r, 200));
    const c = rawSocket(server.origin, { token: session.accessToken });
    await c.opened;
    expect((await c.closed).code).toBe(4008);
    a.ws.close();
    b.ws.close();
  });

  it('caps subscriptions per connection', async () => {
    const { session, conversation } = await register();
    const s = rawSocket(server.origin, { token: session.accessToken });
    await s.opened;
    await new Promise((r) => setTimeout(r, 100));
    for (let id = 1; id <= 3; id++) {
      s.ws.send(
        JSON.stringify({
          id,
          method: 'subscription',
          params: { path: 'chat.onEvent', input: { conversationId: conversation.id } },
        }),
      );
    }
    // The three start concurrently: whichever comes third is refused, the other two run.
    type Frame = { id?: number; error?: { data?: { code?: string; appCode?: string } } };
    const refusals = () => (s.messages as Frame[]).filter((m) => m.error);
    await expect.poll(() => refusals().length).toBe(1);
    expect(refusals()[0]?.error?.data).toMatchObject({
      code: 'TOO_MANY_REQUESTS',
      appCode: 'realtime.too_many_subscriptions',
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(refusals()).toHaveLength(1);
    s.ws.close();
  });

  it('an oversized frame closes that socket (1009); the server keeps serving', async () => {
    const s = rawSocket(server.origin);
    await s.opened;
    s.ws.send('x'.repeat(10_000));
    expect((await s.closed).code).toBe(1009);
    expect((await fetch(`${server.origin}/health`)).status).toBe(200);
  });

  it('malformed messages are answered or dropped, never a crash', async () => {
    const { session } = await register();
    const s = rawSocket(server.origin, { token: session.accessToken });
    await s.opened;
    for (const frame of [
      'not json',
      '{"id": null, "method": "query", "params": {"path": "users.me"}}',
      '{"id": {"x": 1}, "method": "subscription", "params": null}',
      '{"id": 1, "method": "nope"}',
      '[]',
      '{"method": "subscription.stop", "id": 12345}',
      '{"__proto__": {"polluted": true}, "id": 2, "method": "query", "params": {"path": "users.me"}}',
    ]) {
      s.ws.send(frame);
    }
    s.ws.send(JSON.stringify({ id: 99, method: 'query', params: { path: 'users.me' } }));
    await expect
      .poll(() => s.messages.find((m) => (m as { id?: number }).id === 99))
      .toMatchObject({ result: { data: { id: session.user.id } } });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    s.ws.close();
    expect((await fetch(`${server.origin}/health`)).status).toBe(200);
  });

  it('bad connectionParams are refused cleanly', async () => {
    const s = rawSocket(server.origin, { connectionParams: false });
    await s.opened;
    s.ws.send('{"method": "connectionParams", "data": 42}');
    s.ws.send(JSON.stringify({ id: 1, method: 'query', params: { path: 'users.me' } }));
    await new Promise((r) => setTimeout(r, 300));
    expect((await fetch(`${server.origin}/health`)).status).toBe(200);
    s.ws.close();
  });
});
