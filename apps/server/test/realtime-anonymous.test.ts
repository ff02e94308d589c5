import { HANDSHAKE_GRACE_MS } from '@smartspace/api';
import { createClient } from '@smartspace/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestServer, type TestServer } from './harness';
import { rawSocket } from './sockets';

/**
 * A socket that has not authenticated is held only briefly and only a few
 * at a time per address. One still without a valid access token after its handshake grace
 * is closed with 4008 when its address holds more than WS_MAX_ANONYMOUS_PER_IP such sockets,
 * and every one is closed with 4003 after WS_AUTH_TIMEOUT_MS; a signed-in socket is neither
 * counted nor timed out.
 */
const password = 'correct horse battery staple';

async function accessToken(origin: string): Promise<string> {
  const client = createClient({ url: `${origin}/trpc` });
  const session = await client.auth.register.mutate({
    email: `anon-${Date.now()}-${Math.random()}@example.com`,
    password,
    name: 'Anon',
  });
  return session.accessToken;
}

/** Opens the socket and then says nothing, not even its connectionParams. */
function silentSocket(origin: string) {
  const ws = new WebSocket(`${origin.replace(/^http/, 'ws')}/trpc?connectionParams=1`);
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
  );
  return { ws, opened, closed };
}

function isOpen(ws: WebSocket) {
  return ws.readyState === WebSocket.OPEN;
}

describe('unauthenticated sockets per address', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ WS_MAX_ANONYMOUS_PER_IP: '3', WS_AUTH_TIMEOUT_MS: '60000' });
  });
  afterAll(() => server.close());

  it('past the cap, lingering ones are closed (4008); signed-in sockets, even a burst, are not', async () => {
    const token = await accessToken(server.origin);
    // Silent, no token, bad token: none has authenticated, and they stay past the grace.
    const held = [
      silentSocket(server.origin),
      rawSocket(server.origin),
      rawSocket(server.origin, { token: 'nope' }),
    ];
    await Promise.all(held.map((s) => s.opened));
    await new Promise((r) => setTimeout(r, HANDSHAKE_GRACE_MS + 300));
    const extra = rawSocket(server.origin);
    const silentExtra = silentSocket(server.origin);
    // A burst of clients that sign in at once, far more than the cap: all of them get in.
    const burst = Array.from({ length: 10 }, () => rawSocket(server.origin, { token }));
    await Promise.all([extra.opened, silentExtra.opened, ...burst.map((s) => s.opened)]);

    const closed = await Promise.all([extra.closed, silentExtra.closed]);
    expect(closed.map((c) => c.code)).toEqual([4008, 4008]);
    expect(held.every((s) => isOpen(s.ws))).toBe(true);
    expect(burst.every((s) => isOpen(s.ws))).toBe(true);
    const signedIn = burst[0];
    if (!signedIn) throw new Error('no socket');
    signedIn.ws.send(JSON.stringify({ id: 1, method: 'query', params: { path: 'users.me' } }));
    await expect
      .poll(() => signedIn.messages.find((m) => (m as { id?: number }).id === 1))
      .toMatchObject({ result: { data: { name: 'Anon' } } });

    // A freed place can be taken again.
    held[0]?.ws.close();
    await held[0]?.closed;
    const next = rawSocket(server.origin);
    await next.opened;
    await new Promise((r) => setTimeout(r, HANDSHAKE_GRACE_MS + 500));
    expect(isOpen(next.ws)).toBe(true);

    for (const s of [...held, next, ...burst]) s.ws.close();
  });
});

describe('sockets that never authenticate', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ WS_AUTH_TIMEOUT_MS: '1500' });
  });
  afterAll(() => server.close());

  it('are closed with 4003 after WS_AUTH_TIMEOUT_MS, having had their UNAUTHORIZED answer', async () => {
    const token = await accessToken(server.origin);
    const silent = silentSocket(server.origin);
    const anonymous = rawSocket(server.origin);
    const badToken = rawSocket(server.origin, { token: 'not-a-jwt' });
    const signedIn = rawSocket(server.origin, { token });
    await Promise.all([silent.opened, anonymous.opened, badToken.opened, signedIn.opened]);
    const opened = Date.now();

    anonymous.ws.send(JSON.stringify({ id: 1, method: 'query', params: { path: 'users.me' } }));
    await expect
      .poll(() => anonymous.messages.find((m) => (m as { id?: number }).id === 1))
      .toMatchObject({ error: { data: { code: 'UNAUTHORIZED' } } });

    for (const s of [silent, anonymous, badToken]) {
      expect(await s.closed).toMatchObject({ code: 4003 });
    }
    expect(Date.now() - opened).toBeGreaterThanOrEqual(1200);

    await new Promise((r) => setTimeout(r, 500));
    expect(isOpen(signedIn.ws)).toBe(true);
    signedIn.ws.close();
  });
});

describe('behind a proxy (TRUST_PROXY=true)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      TRUST_PROXY: 'true',
      WS_MAX_ANONYMOUS_PER_IP: '1',
      WS_AUTH_TIMEOUT_MS: '60000',
    });
  });
  afterAll(() => server.close());

  /** A silent socket whose proxy says it comes from `address`. */
  function forwardedFrom(address: string) {
    const ws = new WebSocket(`${server.origin.replace(/^http/, 'ws')}/trpc?connectionParams=1`, {
      headers: { 'x-forwarded-for': address },
    });
    const opened = new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    return { ws, opened, closed };
  }

  it('counts each forwarded client address, not the proxy', async () => {
    const a = forwardedFrom('203.0.113.1');
    const b = forwardedFrom('203.0.113.2');
    await Promise.all([a.opened, b.opened]);
    await new Promise((r) => setTimeout(r, HANDSHAKE_GRACE_MS + 300));
    const a2 = forwardedFrom('203.0.113.1');
    await a2.opened;
    expect(await a2.closed).toBe(4008);
    expect(isOpen(a.ws) && isOpen(b.ws)).toBe(true);
    a.ws.close();
    b.ws.close();
  });
});
