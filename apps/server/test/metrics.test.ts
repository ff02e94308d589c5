import { randomUUID } from 'node:crypto';
import { type Api, createApi, createCaller } from '@smartspace/api';
import { createTestDatabase, type TestDatabase, testConfig } from '@smartspace/api/testing';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app';
import { createLogger } from '../src/logger';
import { createMetrics } from '../src/metrics';

/** One sample's value from Prometheus text, by metric name and exact label set. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  for (const line of text.split('\n')) {
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? '')
      .split(/,(?=\w+=")/)
      .filter(Boolean)
      .sort()
      .join(',');
    if (have === wanted) return Number(m[3]);
  }
  return undefined;
}

async function start(env: Record<string, string> = {}) {
  const database = await createTestDatabase();
  const metrics = createMetrics();
  const api = await createApi({
    config: testConfig(env),
    database,
    migrate: false,
    mockChunkDelayMs: 0,
    observe: {
      gatewayCall: metrics.observeGatewayCall,
      runStep: metrics.observeRunStep,
      runFinished: metrics.observeRunFinished,
      eventDelivered: metrics.observeEventDelivered,
    },
  });
  const app = await buildApp({ api, logger: createLogger('silent'), metrics });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return { database, api, app, origin: `http://127.0.0.1:${address.port}` };
}

describe('GET /metrics', () => {
  let database: TestDatabase;
  let api: Api;
  let app: FastifyInstance;
  let origin: string;
  const scrape = async () => {
    const res = await fetch(`${origin}/metrics`);
    expect(res.status).toBe(200);
    return res.text();
  };

  beforeAll(async () => {
    ({ database, api, app, origin } = await start({ RATE_LIMIT_PER_MINUTE: '5' }));
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    await api?.close();
    await database?.close();
  });

  it('serves Prometheus text with process metrics, to loopback, off the rate limit', async () => {
    for (let i = 0; i < 8; i++) await scrape();
    const res = await fetch(`${origin}/metrics`);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toContain('# TYPE smartspace_process_cpu_user_seconds_total counter');
    expect(text).toContain('smartspace_nodejs_eventloop_lag_seconds');
    if (process.env.TEST_DATABASE_URL) {
      expect(sample(text, 'smartspace_db_pool_size', {})).toBe(20);
      expect(sample(text, 'smartspace_db_pool_waiting', {})).toBe(0);
    }
    // Behind a proxy on this machine, a request may come from anywhere.
    const relayed = await fetch(`${origin}/metrics`, { headers: { 'x-forwarded-for': '1.2.3.4' } });
    expect(relayed.status).toBe(403);
  });

  it('counts HTTP requests by route pattern, and tRPC calls and errors by procedure', async () => {
    await fetch(`${origin}/health`);
    await fetch(`${origin}/trpc/users.me`);
    await fetch(`${origin}/trpc/no.such.procedure`);
    const text = await scrape();
    expect(
      sample(text, 'smartspace_http_requests_total', {
        method: 'GET',
        route: '/health',
        status: '200',
      }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      sample(text, 'smartspace_trpc_calls_total', { procedure: 'users.me', type: 'query' }),
    ).toBe(1);
    expect(
      sample(text, 'smartspace_trpc_errors_total', {
        procedure: 'users.me',
        code: 'UNAUTHORIZED',
        app_code: 'auth.unauthenticated',
      }),
    ).toBe(1);
    // A name outside the router never becomes a label.
    expect(text).not.toContain('no.such.procedure');
    expect(
      sample(text, 'smartspace_trpc_calls_total', { procedure: 'unknown', type: 'query' }),
    ).toBe(1);
  });

  it('counts gateway calls, tokens and cost by model and outcome, with no ids in labels', async () => {
    const anonymous = createCaller(
      api.createContext({ token: null, ip: '127.0.0.1', requestId: randomUUID() }),
    );
    const owner = await anonymous.auth.register({
      email: `metrics-${randomUUID().slice(0, 8)}@example.com`,
      password: 'correct horse battery staple',
      name: 'Metrics',
    });
    const c = createCaller(
      api.createContext({ token: owner.accessToken, ip: '127.0.0.1', requestId: randomUUID() }),
    );
    const { id: projectId } = await c.projects.create({ name: 'Metered' });
    for await (const _ of api.deps.gateway.stream({
      projectId,
      userId: owner.user.id,
      source: 'chat',
      model: 'mock-echo',
      messages: [{ role: 'user', content: 'count me' }],
      maxOutputTokens: 100,
    })) {
      // drain
    }
    await c.policies.update({ projectId, allowedModels: ['some-other-model'] });
    const denied = api.deps.gateway.stream({
      projectId,
      userId: owner.user.id,
      source: 'api',
      model: 'mock-echo',
      messages: [{ role: 'user', content: 'no' }],
      maxOutputTokens: 100,
    });
    await expect(denied.next()).rejects.toMatchObject({ code: 'policy.model_not_allowed' });

    const text = await scrape();
    expect(
      sample(text, 'smartspace_gateway_calls_total', {
        model: 'mock-echo',
        source: 'chat',
        outcome: 'succeeded',
        error_code: '',
      }),
    ).toBe(1);
    expect(
      sample(text, 'smartspace_gateway_calls_total', {
        model: 'mock-echo',
        source: 'api',
        outcome: 'denied',
        error_code: 'policy.model_not_allowed',
      }),
    ).toBe(1);
    expect(
      sample(text, 'smartspace_gateway_tokens_total', { model: 'mock-echo', direction: 'output' }),
    ).toBe(4); // "Echo: count me", as mock-echo counts it
    expect(sample(text, 'smartspace_gateway_in_flight', {})).toBe(0);
    for (const id of [projectId, owner.user.id]) expect(text).not.toContain(id);
  });
});

describe('GET /metrics: runs and subscriptions', () => {
  it('counts finished runs by status and times their steps by kind', async () => {
    const s = await start();
    try {
      const anonymous = createCaller(
        s.api.createContext({ token: null, ip: '127.0.0.1', requestId: randomUUID() }),
      );
      const owner = await anonymous.auth.register({
        email: `metrics-runs-${randomUUID().slice(0, 8)}@example.com`,
        password: 'correct horse battery staple',
        name: 'Runs',
      });
      const c = createCaller(
        s.api.createContext({ token: owner.accessToken, ip: '127.0.0.1', requestId: randomUUID() }),
      );
      const { id: projectId } = await c.projects.create({ name: 'Runs' });
      const agent = await c.agents.create({
        projectId,
        name: 'Calculator',
        instructions: 'Be helpful.',
        model: 'mock-echo',
        tools: ['calculator'],
      });
      const run = await c.runs.start({
        agentId: agent.id,
        input: 'Add: [[tool:calculator {"expression":"2+2"}]]',
      });
      await expect
        .poll(async () => (await c.runs.get({ runId: run.id })).status, { timeout: 20_000 })
        .toBe('succeeded');
      const text = await (await fetch(`${s.origin}/metrics`)).text();
      expect(sample(text, 'smartspace_runs_finished_total', { status: 'succeeded' })).toBe(1);
      expect(sample(text, 'smartspace_run_step_duration_seconds_count', { kind: 'model' })).toBe(2);
      expect(sample(text, 'smartspace_run_step_duration_seconds_count', { kind: 'tool' })).toBe(1);
      expect(sample(text, 'smartspace_subscriptions_open', {})).toBe(0);
      // An event handed to a listener here is timed from its publication.
      const seen: number[] = [];
      const off = s.api.deps.bus.listen('metrics-test', (e) => seen.push(e.id));
      await s.api.deps.bus.publish({ topic: 'metrics-test', type: 'probe', payload: {} });
      await expect.poll(() => seen.length, { timeout: 10_000 }).toBe(1);
      off();
      const after = await (await fetch(`${s.origin}/metrics`)).text();
      expect(sample(after, 'smartspace_event_delivery_lag_seconds_count', {})).toBe(1);
    } finally {
      await s.app.close();
      await s.api.close();
      await s.database.close();
    }
  }, 60_000);
});

describe('GET /metrics with METRICS_TOKEN', () => {
  it('answers the bearer token only', async () => {
    const token = 'metrics-token-0123456789abcdef';
    const s = await start({ METRICS_TOKEN: token });
    try {
      expect((await fetch(`${s.origin}/metrics`)).status).toBe(401);
      const wrong = await fetch(`${s.origin}/metrics`, {
        headers: { authorization: 'Bearer metrics-token-0123456789abcdeX' },
      });
      expect(wrong.status).toBe(401);
      const right = await fetch(`${s.origin}/metrics`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(right.status).toBe(200);
      expect(await right.text()).toContain('smartspace_http_requests_total');
    } finally {
      await s.app.close();
      await s.api.close();
      await s.database.close();
    }
  }, 60_000);
});
