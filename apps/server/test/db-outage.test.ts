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
        // Every call checks its session in the database, so each one meets the outage (a
        // check kept in the process would answer users.me for up to SESSION_CACHE_MS).
        SESSION_CACHE_MS: '0',
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

  async function query<T>(path: string, input: unknown): Promise<T> {
    const res = await fetch(
      `${origin}/trpc/${path}?input=${encodeURIComponent(JSON.stringify(input))}`,
      { headers: { authorization: `Bearer ${token}` } },
    );
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

  /** Waits until no reply of the conversation is streaming. */
  async function settleReplies() {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const page = await query<{ items: { status: string }[] }>('chat.messages.list', {
        conversationId,
        limit: 5,
      }).catch(() => null);
      if (page && !page.items.some((m) => m.status === 'streaming')) return;
      if (Date.now() > deadline) throw new Error('a reply is still streaming after 10 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function expectRecovered() {
    // The pool reconnects on demand, without a restart: soon every call succeeds again.
    const deadline = Date.now() + 20_000;
    // Each call until it answers 200 once (a second chat.send right after a first that
    // succeeded would meet its reply still streaming).
    const statuses = async (before: Record<string, number>) => {
      const all: Record<string, number> = { ...before };
      for (const [name, call] of Object.entries({
        ...calls,
        ready: () => fetch(`${origin}/ready`),
      })) {
        if (all[name] !== 200) all[name] = (await call()).status;
      }
      return all;
    };
    let last = await statuses({});
    while (Object.values(last).some((status) => status !== 200) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      last = await statuses(last);
    }
    // Let the reply chat.send started finish, so the next chat.send is not refused
    // chat.reply_in_progress.
    await settleReplies();
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

  it('a reply written while the database is away stores its outcome once it is back', async () => {
    // Long enough (mock-echo streams a word per 5 ms) that the outage starts mid-reply.
    const words = Array.from({ length: 400 }, (_, i) => `w${i}`).join(' ');
    const { replyId } = await trpc<{ replyId: string }>('chat.send', {
      conversationId,
      content: words,
    });
    await new Promise((r) => setTimeout(r, 300));
    await proxy.down();
    // The model finishes meanwhile; the reply's last writes fail and are retried.
    await new Promise((r) => setTimeout(r, 2_500));
    const upAt = Date.now();
    await proxy.up();
    type Listed = { items: { id: string; status: string; content: string }[] };
    let reply: Listed['items'][number] | undefined;
    const deadline = Date.now() + 15_000;
    for (;;) {
      const page = await query<Listed>('chat.messages.list', { conversationId, limit: 10 }).catch(
        () => null,
      );
      reply = page?.items.find((m) => m.id === replyId);
      if ((reply && reply.status !== 'streaming') || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    // Stored by the reply itself, soon after the database came back: not left streaming for
    // the sweeper (30 s), and the conversation takes the next message.
    expect(reply?.status).toMatch(/^(complete|failed)$/);
    expect(Date.now() - upAt).toBeLessThan(15_000);
    expect(reply?.content.length).toBeGreaterThan(0);
    await expectRecovered();
  }, 60_000);

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
