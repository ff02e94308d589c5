import { timingSafeEqual } from 'node:crypto';
import type { Api } from '@smartspace/api';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Gauge } from 'prom-client';
import type { Metrics } from '../metrics';

export interface MetricsPluginOptions {
  api: Api;
  metrics: Metrics;
  /** METRICS_TOKEN: required as a bearer token; unset, only loopback clients are answered. */
  token: string | undefined;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Whether the scraper may read the metrics: the bearer token when one is configured; without
 * one, a direct connection from this machine (a request relayed by a proxy on this machine
 * carries X-Forwarded-For and is refused: it may come from anywhere).
 */
function allowed(req: FastifyRequest, token: string | undefined): boolean {
  if (token) {
    const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    return match?.[1] !== undefined && sameSecret(match[1], token);
  }
  return (
    LOOPBACK.has(req.socket.remoteAddress ?? '') && req.headers['x-forwarded-for'] === undefined
  );
}

/**
 * GET /metrics (Prometheus text format) and the hooks that feed it: every HTTP request by
 * route pattern, every tRPC call over HTTP by procedure (names outside the router count as
 * `unknown`, so a caller cannot grow the label set), open WebSockets and gateway calls in
 * flight read at scrape time. tRPC errors are counted by the app's onError (app.ts).
 */
async function metrics(app: FastifyInstance, opts: MetricsPluginOptions) {
  const { metrics: m, api } = opts;
  const procedures = new Set(Object.keys(api.router._def.procedures));
  const started = new WeakMap<FastifyRequest, bigint>();

  new Gauge({
    name: 'smartspace_gateway_in_flight',
    help: 'Gateway calls holding a reservation in this process',
    registers: [m.registry],
    collect() {
      this.set(api.deps.gateway.inFlight());
    },
  });
  new Gauge({
    name: 'smartspace_websockets_open',
    help: 'Open WebSocket connections on this instance',
    registers: [m.registry],
    collect() {
      this.set(app.websocketServer?.clients.size ?? 0);
    },
  });

  const pool = (key: 'inUse' | 'waiting' | 'size') => () => api.database.poolStats?.()[key] ?? 0;
  for (const [name, help, read] of [
    ['smartspace_db_pool_in_use', 'Database connections in use (PostgreSQL)', pool('inUse')],
    ['smartspace_db_pool_waiting', 'Callers waiting for a database connection', pool('waiting')],
    ['smartspace_db_pool_size', 'Database connections in the pool', pool('size')],
  ] as const) {
    new Gauge({
      name,
      help,
      registers: [m.registry],
      collect() {
        this.set(read());
      },
    });
  }
  new Gauge({
    name: 'smartspace_subscriptions_open',
    help: 'Open tRPC subscriptions on this instance',
    registers: [m.registry],
    collect() {
      this.set(api.connections.subscriptionCount());
    },
  });
  new Gauge({
    name: 'smartspace_payments_watcher_active',
    help: 'Whether this instance is the active deposit watcher (holds its lock): 1 or 0',
    registers: [m.registry],
    collect() {
      this.set(api.paymentWatcher?.active() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'smartspace_payments_watcher_blocks_behind',
    help: 'Blocks between the chain head and the last block the watcher scanned here',
    registers: [m.registry],
    collect() {
      const behind = api.paymentWatcher?.blocksBehind();
      if (behind !== null && behind !== undefined) this.set(behind);
    },
  });

  app.addHook('onRequest', async (req) => {
    started.set(req, process.hrtime.bigint());
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const method = req.method;
    m.httpRequests.inc({ method, route, status: String(reply.statusCode) });
    const t0 = started.get(req);
    if (t0 !== undefined) {
      m.httpDuration.observe({ method, route }, Number(process.hrtime.bigint() - t0) / 1e9);
    }
    if (req.url.startsWith('/trpc/')) {
      const path = decodeURIComponent(req.url.slice('/trpc/'.length).split('?')[0] ?? '');
      const type = method === 'GET' ? 'query' : 'mutation';
      for (const name of path.split(',')) {
        m.trpcCalls.inc({ procedure: procedureLabel(procedures, name), type });
      }
    }
  });

  app.get('/metrics', { config: { rateLimit: false } }, async (req, reply) => {
    if (!allowed(req, opts.token)) {
      return reply.status(opts.token ? 401 : 403).send({
        error: opts.token
          ? 'Send the metrics token as Authorization: Bearer'
          : 'Metrics are served to this machine only (set METRICS_TOKEN to scrape remotely)',
        statusCode: opts.token ? 401 : 403,
      });
    }
    reply.header('content-type', m.registry.contentType);
    return m.registry.metrics();
  });
}

/** Registered with fastify-plugin: its hooks see every route of the app. */
export const metricsPlugin = fp(metrics, { name: 'smartspace-metrics' });

/** A procedure name as a label: known names as they are, anything else `unknown`. */
export function procedureLabel(procedures: ReadonlySet<string>, name: string | undefined): string {
  return name !== undefined && procedures.has(name) ? name : 'unknown';
}
