import { Writable } from 'node:stream';
import { openDatabase } from '@smartspace/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './harness';

let server: TestServer;
const logLines: string[] = [];
const logs = new Writable({
  write(chunk, _enc, done) {
    logLines.push(String(chunk));
    done();
  },
});

beforeAll(async () => {
  server = await startTestServer(
    { BODY_LIMIT_BYTES: '4096', CORS_ORIGINS: 'https://app.example.com' },
    { logs },
  );
});
afterAll(() => server.close());

const post = (path: string, body: string, contentType = 'application/json') =>
  fetch(`${server.origin}/trpc/${path}`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body,
  });

async function errorOf(res: Response): Promise<Record<string, unknown>> {
  const body = (await res.json()) as { error: { message: string; data: Record<string, unknown> } };
  return { status: res.status, ...body.error.data, message: body.error.message };
}

const validRegistration = (email: string) =>
  JSON.stringify({ email, password: 'a long enough password', name: 'HTTP' });

describe('bad input gets a clear 4xx, never a 5xx or a crash', () => {
  it('oversized body: 413 in the tRPC envelope', async () => {
    const res = await post('auth.register', JSON.stringify({ name: 'x'.repeat(10_000) }));
    expect(await errorOf(res)).toMatchObject({
      status: 413,
      code: 'PAYLOAD_TOO_LARGE',
      appCode: 'request.too_large',
    });
  });

  it('wrong content type on a mutation: 415', async () => {
    const res = await post('auth.register', validRegistration('ct@example.com'), 'text/plain');
    expect(res.status).toBe(415);
  });

  it('malformed JSON: 400 request.malformed', async () => {
    const res = await post('auth.register', '{"email": ');
    expect(await errorOf(res)).toMatchObject({
      status: 400,
      appCode: 'request.malformed',
    });
  });

  it('bad field values: 400 with fieldErrors', async () => {
    const res = await post(
      'auth.register',
      JSON.stringify({ email: 'nope', password: 'x', name: 'n' }),
    );
    const err = await errorOf(res);
    expect(err).toMatchObject({ status: 400, appCode: 'request.invalid' });
    expect(Object.keys(err.fieldErrors as object).sort()).toEqual(['email', 'password']);
  });

  it('__proto__ payloads pollute nothing', async () => {
    const body = `{"__proto__":{"polluted":true,"role":"admin"},"constructor":{"prototype":{"polluted":true}},${validRegistration('proto@example.com').slice(1)}`;
    const res = await post('auth.register', body);
    expect(res.status).toBeLessThan(500);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    if (res.ok) {
      const data = ((await res.json()) as { result: { data: { user: { role: string } } } }).result
        .data;
      // The first user of the database is admin anyway; what matters is nothing leaked in.
      expect(Object.keys(data.user).sort()).toEqual(['createdAt', 'email', 'id', 'name', 'role']);
    }
  });

  it('a 1,000-comma batch path: 4xx, and the server keeps serving', async () => {
    const commas = await fetch(`${server.origin}/trpc/${'a,'.repeat(1000)}a?batch=1&input={}`);
    expect(await errorOf(commas)).toMatchObject({ status: 400, code: 'BAD_REQUEST' });
    // Longer than any legitimate batch path: refused before routing.
    const long = Array.from({ length: 1001 }, () => 'users.me').join(',');
    expect((await fetch(`${server.origin}/trpc/${long}?batch=1&input={}`)).status).toBe(414);
    const twentyOne = Array.from({ length: 21 }, () => 'users.me').join(',');
    expect((await fetch(`${server.origin}/trpc/${twentyOne}?batch=1&input={}`)).status).toBe(400);
    expect((await fetch(`${server.origin}/health`)).status).toBe(200);
  });

  it('GET on a mutation: 405; unknown procedure: 404', async () => {
    expect((await fetch(`${server.origin}/trpc/auth.register`)).status).toBe(405);
    expect((await fetch(`${server.origin}/trpc/nope.nothing`)).status).toBe(404);
  });

  it('malformed query input: 400', async () => {
    const reg = await post('auth.register', validRegistration('query-input@example.com'));
    const { result } = (await reg.json()) as { result: { data: { accessToken: string } } };
    const res = await fetch(`${server.origin}/trpc/projects.list?input=%7Bbroken`, {
      headers: { authorization: `Bearer ${result.data.accessToken}` },
    });
    expect(await errorOf(res)).toMatchObject({ status: 400, appCode: 'request.malformed' });
  });
});

describe('host behaviour', () => {
  it('health and readiness', async () => {
    expect(await (await fetch(`${server.origin}/health`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${server.origin}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', pendingMigrations: 0 });
  });

  it('every response carries a request id we generated', async () => {
    const res = await fetch(`${server.origin}/health`, { headers: { 'x-request-id': 'forged' } });
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('CORS: only configured origins', async () => {
    const allowed = await fetch(`${server.origin}/health`, {
      headers: { origin: 'https://app.example.com' },
    });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    const denied = await fetch(`${server.origin}/health`, {
      headers: { origin: 'https://evil.example.com' },
    });
    expect(denied.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('never logs passwords or tokens', async () => {
    const res = await post('auth.register', validRegistration('logs@example.com'));
    const { result } = (await res.json()) as {
      result: { data: { accessToken: string; refreshToken: string } };
    };
    await fetch(`${server.origin}/trpc/users.me`, {
      headers: { authorization: `Bearer ${result.data.accessToken}` },
    });
    await post('auth.refresh', JSON.stringify({ refreshToken: result.data.refreshToken }));
    const all = logLines.join('');
    expect(all).toContain('"msg":"request"');
    expect(all).not.toContain('a long enough password');
    expect(all).not.toContain(result.data.accessToken);
    expect(all).not.toContain(result.data.refreshToken);
  });

  it('logs one line per request: id, route, status, duration, procedure, who, project, appCode', async () => {
    const res = await post('auth.register', validRegistration('log-lines@example.com'));
    const { result } = (await res.json()) as {
      result: { data: { accessToken: string; user: { id: string } } };
    };
    const auth = { authorization: `Bearer ${result.data.accessToken}` };
    const created = await fetch(`${server.origin}/trpc/projects.create`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Logged' }),
    });
    const projectId = ((await created.json()) as { result: { data: { id: string } } }).result.data
      .id;
    const input = encodeURIComponent(JSON.stringify({ projectId }));
    await fetch(`${server.origin}/trpc/projects.get?input=${input}`, { headers: auth });
    await fetch(`${server.origin}/trpc/users.me`);
    await fetch(`${server.origin}/health`);

    const lines = logLines
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === 'request');
    const get = lines.find((l) => l.procedure === 'projects.get');
    expect(get).toMatchObject({
      method: 'GET',
      route: '/trpc/:path',
      path: '/trpc/projects.get',
      status: 200,
      userId: result.data.user.id,
      projectId,
    });
    expect(typeof get?.reqId).toBe('string');
    expect(typeof get?.ms).toBe('number');
    expect(lines.find((l) => l.procedure === 'users.me' && l.status === 401)).toMatchObject({
      appCode: 'auth.unauthenticated',
    });
    // Probes only at debug level.
    expect(lines.some((l) => l.route === '/health')).toBe(false);
    expect(logLines.join('')).not.toContain(result.data.accessToken);
  });
});

describe('readiness and internal errors without a database', () => {
  it('503 while migrations are pending', async () => {
    const unmigrated = await openDatabase({ dataDir: 'memory://' });
    const s = await startTestServer({}, { database: unmigrated });
    try {
      const res = await fetch(`${s.origin}/ready`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ status: 'not_ready', database: 'up' });
    } finally {
      await s.close();
    }
  });

  it('503 when the database is down; 500s carry no internals', async () => {
    const s = await startTestServer();
    try {
      const reg = await fetch(`${s.origin}/trpc/auth.register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: validRegistration('down@example.com'),
      });
      const token = ((await reg.json()) as { result: { data: { accessToken: string } } }).result
        .data.accessToken;
      await s.api.database.close();
      const ready = await fetch(`${s.origin}/ready`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ database: 'down' });
      const res = await fetch(`${s.origin}/trpc/users.me`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(500);
      const text = await res.text();
      expect(JSON.parse(text).error).toMatchObject({
        message: 'Internal server error',
        data: { appCode: 'internal' },
      });
      expect(text).not.toMatch(/select|stack|\.ts:|sessions|closed/i);
    } finally {
      await s.close().catch(() => {});
    }
  });
});

describe('rate limits', () => {
  it('per IP on HTTP and per call inside batches', async () => {
    const s = await startTestServer({ RATE_LIMIT_PER_MINUTE: '5' });
    try {
      // One batch of 6 calls is one HTTP request but six calls: the sixth is refused.
      const path = Array.from({ length: 6 }, () => 'users.me').join(',');
      const res = await fetch(`${s.origin}/trpc/${path}?batch=1&input={}`);
      const results = (await res.json()) as { error?: { data: { appCode: string } } }[];
      expect(results.map((r) => r.error?.data.appCode)).toEqual([
        'auth.unauthenticated',
        'auth.unauthenticated',
        'auth.unauthenticated',
        'auth.unauthenticated',
        'auth.unauthenticated',
        'rate_limited',
      ]);
      for (let i = 0; i < 4; i++) await fetch(`${s.origin}/trpc/users.me`);
      const limited = await fetch(`${s.origin}/trpc/users.me`);
      expect(limited.status).toBe(429);
      expect(await errorOf(limited)).toMatchObject({
        code: 'TOO_MANY_REQUESTS',
        appCode: 'rate_limited',
      });
      // Probes are never throttled.
      expect((await fetch(`${s.origin}/health`)).status).toBe(200);
    } finally {
      await s.close();
    }
  });
});
