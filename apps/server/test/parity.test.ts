import { type Api, createApi } from '@smartspace/api';
import { createTestDatabase, type TestDatabase, testConfig } from '@smartspace/api/testing';
import { type CreateFastifyContextOptions, fastifyTRPCPlugin } from '@trpc/server/adapters/fastify';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, MAX_BATCH_SIZE } from '../src/app';
import { createLogger } from '../src/logger';
import { type ParityCase, parityCases } from './parity-cases';

/**
 * The fast path of plugins/trpc.ts answers plain JSON calls without tRPC's HTTP handler. Here
 * every case of parity-cases.ts goes to it (/trpc) and to tRPC's stock Fastify plugin
 * (/trpc-stock), mounted in the same app over the same router, context and limits: status,
 * the headers clients and caches act on, and bodies must match. Subscriptions are the one
 * deliberate difference, asserted apart.
 */
let app: FastifyInstance;
let api: Api;
let database: TestDatabase;
let origin: string;
let token: string;
let projectId: string;

const bearer = (header: string | undefined) => /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1] ?? null;

beforeAll(async () => {
  database = await createTestDatabase();
  const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
  const config = testConfig({ BODY_LIMIT_BYTES: '4096' });
  api = await createApi({ config, database, migrate: false, log: logger });
  app = await buildApp({ api, logger });
  // The same options app.ts gives the fast path (the upload allowance included).
  await app.register(fastifyTRPCPlugin, {
    prefix: '/trpc-stock',
    trpcOptions: {
      router: api.router,
      createContext: ({ req }: CreateFastifyContextOptions) =>
        api.createContext({
          token: bearer(req.headers.authorization),
          ip: req.ip,
          requestId: req.id,
          userAgent: req.headers['user-agent'],
        }),
      maxBatchSize: MAX_BATCH_SIZE,
      maxBodySize: config.files.uploadMaxBytes + 64 * 1024,
    },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  origin = `http://127.0.0.1:${address.port}`;

  const session = await call('/trpc/auth.register', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'parity@example.com', password: 'a long password', name: 'P' }),
  });
  token = session.accessToken as string;
  const project = await call('/trpc/projects.create', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ name: 'Parity' }),
  });
  projectId = project.id as string;
});

afterAll(async () => {
  await app?.close();
  await api?.close();
  await database?.close();
});

async function call(url: string, init: RequestInit): Promise<Record<string, unknown>> {
  const res = await fetch(`${origin}${url}`, init);
  const body = (await res.json()) as { result: { data: Record<string, unknown> } };
  return body.result.data;
}

/** Values that differ between two identical calls by nature: ids, times, tokens. */
function stable(text: string): string {
  return text
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<uuid>')
    .replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z/g, '<time>')
    .replace(/eyJ[\w-]+\.[\w-]+\.[\w-]+/g, '<jwt>');
}

const comparedHeaders = ['content-type', 'allow', 'vary', 'retry-after'];

async function replay(mount: string, c: ParityCase) {
  const headers: Record<string, string> = { ...c.headers };
  if (c.auth) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${origin}/${mount}/${c.url}`, {
    method: c.method ?? 'GET',
    headers,
    body: typeof c.body === 'function' ? c.body() : c.body,
    signal: AbortSignal.timeout(10_000),
  });
  const text = stable(await res.text());
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // JSONL streams and empty bodies are compared as text.
  }
  return {
    status: res.status,
    headers: Object.fromEntries(comparedHeaders.map((h) => [h, res.headers.get(h)])),
    body,
  };
}

describe('the fast path answers exactly as tRPC’s own handler', () => {
  it('has cases to replay', () => {
    expect(parityCases({ projectId: 'x' }).length).toBeGreaterThan(30);
  });

  it.each(parityCases({ projectId: '' }).map((c) => [c.name]))('%s', async (name) => {
    const c = parityCases({ projectId }).find((x) => x.name === name);
    if (!c) throw new Error(`no case ${name}`);
    // In sequence: a mutation's effects are in place before the other mount repeats it.
    const fast = await replay('trpc', c);
    const stock = await replay('trpc-stock', c);
    if (c.wholeRequestRefused) {
      expect(stock.headers['content-type']).toBe('text/plain;charset=UTF-8');
      expect(fast.headers['content-type']).toBe('application/json');
      stock.headers['content-type'] = 'application/json';
    }
    expect(fast).toEqual(stock);
  });
});

describe('the one deliberate difference: subscriptions over HTTP', () => {
  it('the fast path refuses them with 405, where tRPC would open an event stream', async () => {
    const input = encodeURIComponent(JSON.stringify({ conversationId: projectId }));
    const fast = await fetch(`${origin}/trpc/chat.onEvent?input=${input}`, {
      signal: AbortSignal.timeout(5000),
    });
    expect(fast.status).toBe(405);
    expect(((await fast.json()) as { error: { data: unknown } }).error.data).toMatchObject({
      code: 'METHOD_NOT_SUPPORTED',
      path: 'chat.onEvent',
    });

    const aborted = new AbortController();
    const stock = await fetch(`${origin}/trpc-stock/chat.onEvent?input=${input}`, {
      signal: aborted.signal,
    });
    expect(stock.headers.get('content-type')).toMatch(/^text\/event-stream/);
    aborted.abort();
  });
});
