import { randomUUID } from 'node:crypto';
import { type Api, createApi } from '@smartspace/api';
import {
  createTestDatabase,
  proxyDatabaseUrl,
  type TcpProxy,
  type TestDatabase,
  testConfig,
} from '@smartspace/api/testing';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app';
import { createLogger } from '../src/logger';
import { rawSocket } from './sockets';

/**
 * A running server whose PostgreSQL goes away and comes back: a TCP
 * proxy between the server and the per-file test database cuts, refuses or black-holes its
 * connections. Calls that need the database must answer 503 service.unavailable quickly, with
 * Retry-After, and succeed again once the database is back, without a restart.
 * PGlite runs inside the server process: there is no connection to lose, so this needs
 * PostgreSQL (TEST_DATABASE_URL); the driver-level bounds are also tested without it in
 * packages/api/src/db/bounds.test.ts.
 */
const postgresEnabled = Boolean(process.env.TEST_DATABASE_URL);

const PASSWORD = 'correct horse battery staple';
const CONNECT_TIMEOUT_MS = 800;
const STATEMENT_TIMEOUT_MS = 700;
/**
 * What a call may take while the database is unreachable: its first query gives up within
 * connect + statement timeouts (+0.5 s) of being issued; the rest is margin for a busy machine.
 */
const FAIL_FAST_MS = 3_000;

interface Outcome {
  status: number;
  ms: number;
  retryAfter: string | null;
  code?: string;
  appCode?: string;
}

describe.runIf(postgresEnabled)('a database outage while the server runs', () => {
  let database: TestDatabase;
  let proxy: TcpProxy;
  let api: Api;
  let app: FastifyInstance;
  let origin: string;
  let token: string;
  let email: string;
  let conversationId: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    const proxied = await proxyDatabaseUrl(database.url ?? '');
    proxy = proxied.proxy;
    const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
    // Opened from config, as in production: the timeouts below are read from the environment.
    api = await createApi({
      config: testConfig({
        DATABASE_URL: proxied.url,
        DATABASE_POOL_SIZE: '4',
        DATABASE_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
        DATABASE_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
      }),
      migrate: false,
      log: logger,
    });
    app = await buildApp({ api, logger });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    origin = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;

    email = `outage.${Date.now()}@example.com`;
    const session = await trpc<{ accessToken: string }>('auth.register', {
      email,
      password: PASSWORD,
      name: 'Outage',
    });
    token = session.accessToken;
    const project = await trpc<{ id: string }>('projects.create', { name: 'Outage' });
    const conversation = await trpc<{ id: string }>('chat.conversations.create', {
      projectId: project.id,
    });
    conversationId = conversation.id;
  }, 60_000);

  // Each test starts with the database reachable, whatever the previous one left.
  afterEach(() => proxy?.up());

  afterAll(async () => {
    api?.connections.closeAll(1001, 'test server closing');
    await app?.close();
    await api?.close();
    await proxy?.close();
    await database?.close();
  });

  async function trpc<T>(path: string, input: unknown): Promise<T> {
    const res = await fetch(`${origin}/trpc/${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify(input),
    });
    const body = (await res.json()) as { result?: { data: T } };
    if (!body.result) throw new Error(`${path}: HTTP ${res.status} ${JSON.stringify(body)}`);
    return body.result.data;
  }

  /** The four calls the attack used, each needing the database. */
  const calls: Record<string, () => Promise<Response>> = {
    'users.me': () =>
      fetch(`${origin}/trpc/users.me`, { headers: { authorization: `Bearer ${token}` } }),
    'projects.list': () =>
      fetch(`${origin}/trpc/projects.list?input=${encodeURIComponent('{}')}`, {
        headers: { authorization: `Bearer ${token}` },
      }),
    'chat.send': () =>
      fetch(`${origin}/trpc/chat.send`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ conversationId, content: 'still there?' }),
      }),
    'auth.login': () =>
      fetch(`${origin}/trpc/auth.login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email, password: PASSWORD }),
      }),
  };

  async function outcome(call: () => Promise<Response>): Promise<Outcome> {
    const started = performance.now();
    const res = await call();
    const body = (await res.json()) as { error?: { data: { code: string; appCode: string } } };
    return {
      status: res.status,
      ms: performance.now() - started,
      retryAfter: res.headers.get('retry-after'),
      ...(body.error ? { code: body.error.data.code, appCode: body.error.data.appCode } : {}),
    };
  }

  async function expectUnavailable() {
    for (const [name, call] of Object.entries(calls)) {
      const o = await outcome(call);
      expect({ name, ...o, ms: undefined }).toEqual({
        name,
        status: 503,
        ms: undefined,
        retryAfter: expect.stringMatching(/^\d+$/),
        code: 'SERVICE_UNAVAILABLE',
        appCode: 'service.unavailable',
      });
      expect(o.ms, name).toBeLessThan(FAIL_FAST_MS);
    }
    const ready = await outcome(() => fetch(`${origin}/ready`));
    expect(ready.status).toBe(503);
    expect(ready.ms).toBeLessThan(FAIL_FAST_MS);
    // Outside tRPC too: a download needs the database to check the token and the file.
    const started = performance.now();
    const download = await fetch(`${origin}/files/${randomUUID()}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect({
      status: download.status,
      retryAfter: download.headers.get('retry-after'),
      body: await download.json(),
    }).toEqual({
      status: 503,
      retryAfter: expect.stringMatching(/^\d+$/),
      body: { error: expect.stringMatching(/unavailable/), statusCode: 503 },
    });
    expect(performance.now() - started).toBeLessThan(FAIL_FAST_MS);
  }

  async function expectRecovered() {
    // The pool reconnects on demand, without a restart: soon every call succeeds again.
    const deadline = Date.now() + 20_000;
    const statuses = async () => {
      const all: Record<string, number> = {};
      for (const [name, call] of Object.entries({
        ...calls,
        ready: () => fetch(`${origin}/ready`),
      })) {
        all[name] = (await call()).status;
      }
      return all;
    };
    let last = await statuses();
    while (Object.values(last).some((status) => status !== 200) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      last = await statuses();
    }
    expect(last).toEqual({
      'users.me': 200,
      'projects.list': 200,
      'chat.send': 200,
      'auth.login': 200,
      ready: 200,
    });
  }

  it('answers normally while the database is there', async () => {
    await expectRecovered();
  });

  it('down (connections cut, new ones refused): 503 fast, then recovers', async () => {
    await proxy.down();
    await expectUnavailable();
    // Still failing fast after a while (the reconnect backoff must not grow into a hang).
    await new Promise((r) => setTimeout(r, 1_500));
    await expectUnavailable();
    await proxy.up();
    await expectRecovered();
  }, 60_000);

  it('black hole (nothing answers, connections hang): 503 fast, then recovers', async () => {
    proxy.blackhole();
    await expectUnavailable();
    // More calls than the pool has connections, at once: none waits unbounded for one.
    const many = await Promise.all(
      Array.from({ length: 12 }, () => outcome(calls['projects.list'] as () => Promise<Response>)),
    );
    for (const o of many) {
      expect(o.status).toBe(503);
      expect(o.ms).toBeLessThan(FAIL_FAST_MS);
    }
    await proxy.up();
    await expectRecovered();
  }, 60_000);

  it('over WebSocket: the same error shape', async () => {
    const socket = rawSocket(origin, { token });
    await socket.opened;
    let id = 0;
    const query = async (path: string) => {
      id += 1;
      const mine = id;
      socket.ws.send(JSON.stringify({ id: mine, method: 'query', params: { path } }));
      const deadline = Date.now() + 10_000;
      for (;;) {
        const reply = socket.messages.find((m) => (m as { id?: number }).id === mine);
        if (reply) return reply as { result?: unknown; error?: { data: Record<string, unknown> } };
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      expect((await query('users.me')).result).toBeDefined();
      await proxy.down();
      const started = performance.now();
      expect((await query('users.me')).error?.data).toMatchObject({
        code: 'SERVICE_UNAVAILABLE',
        appCode: 'service.unavailable',
      });
      expect(performance.now() - started).toBeLessThan(FAIL_FAST_MS);
      await proxy.up();
      await expectRecovered();
      expect((await query('users.me')).result).toBeDefined();
    } finally {
      socket.ws.close();
    }
  }, 60_000);
});
