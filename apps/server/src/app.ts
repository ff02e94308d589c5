import { randomUUID } from 'node:crypto';
import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import websocket from '@fastify/websocket';
import {
  type Api,
  AppError,
  type Context,
  genericAppCodes,
  isServiceUnavailable,
  type RequestTrail,
} from '@smartspace/api';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { Logger } from './logger';
import { createMetrics, type Metrics } from './metrics';
import { compatPlugin } from './plugins/compat';
import { docsPlugin } from './plugins/docs';
import { filesPlugin } from './plugins/files';
import { metricsPlugin, procedureLabel } from './plugins/metrics';
import { trpcPlugin } from './plugins/trpc';
import { trpcErrorBody } from './plugins/trpc-errors';
import { webPlugin } from './plugins/web';

export interface AppOptions {
  api: Api;
  logger: Logger;
  /** Where /metrics reads from; pass the one whose gateway hook createApi got. */
  metrics?: Metrics;
}

/** Max calls in one HTTP batch (API.md). */
export const MAX_BATCH_SIZE = 20;

/** Room for multipart boundaries and the other fields around an upload of the maximum size. */
const MULTIPART_OVERHEAD_BYTES = 64 * 1024;

/**
 * Sent with every 503 (database unreachable, chain RPC down): long enough for the database
 * pool to reconnect, short enough that clients notice the recovery soon.
 */
const RETRY_AFTER_SECONDS = 5;

/**
 * Headers and body must both arrive within REQUEST_TIMEOUT_MS. Node enforces these deadlines
 * on a timer (`connectionsCheckingInterval`, 30 s by default) and gives headers 60 s unless
 * told otherwise, so slow requests would outlive the timeout by up to a minute: check often
 * enough that the overshoot stays a tenth of the timeout, at most 1 s.
 */
function requestDeadlines(timeoutMs: number) {
  return {
    requestTimeout: timeoutMs,
    headersTimeout: timeoutMs,
    connectionsCheckingInterval: Math.min(1_000, Math.ceil(timeoutMs / 10)),
  };
}

/** Refusals by the router, before any route runs; the URL is never echoed back. */
const FRAMEWORK_MESSAGES: Record<string, string> = {
  FST_ERR_MAX_PARAM_LENGTH: 'Request URL too long',
  FST_ERR_BAD_URL: 'Malformed request URL',
};

/** Every error under /trpc in the tRPC envelope, the rest in the plain one. */
function sendError(req: FastifyRequest, reply: FastifyReply, status: number, message: string) {
  if (req.url.startsWith('/trpc')) {
    const body = trpcErrorBody(status, message);
    // Framework errors (a malformed URL) come before onRequest set the trail up.
    if (req.trail) req.trail.appCode ??= body.error.data.appCode;
    return reply.status(status).send(body);
  }
  return reply.status(status).send({ error: message, statusCode: status });
}

/** Whether a browser's Origin is the host it is connecting to (the served web app). */
function sameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return host !== undefined && new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}

function bearer(header: string | undefined): string | null {
  if (!header) return null;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1] ?? null;
}

/** What a request's log line says beyond method, route and status; filled as it runs. */
export interface RequestLog extends RequestTrail {
  /** The SmartSpace appCode of the (first) error it answered with. */
  appCode?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    trail: RequestLog;
  }
}

/** Probes and scrapes come every few hundred milliseconds: their lines only at debug. */
const QUIET_ROUTES = new Set(['/health', '/ready', '/metrics']);

/**
 * One line per finished request: request id (the logger's binding), method, route pattern,
 * path without its query (tRPC inputs live there), status, duration, the tRPC procedures
 * called, who called (user, API key) and for which project, and the appCode of an error.
 */
function logRequest(req: FastifyRequest, reply: FastifyReply) {
  const route = req.routeOptions.url ?? 'unmatched';
  const status = reply.statusCode;
  const level = QUIET_ROUTES.has(route) ? 'debug' : status >= 500 ? 'error' : 'info';
  // Skip building the line when its level is off (pino's loggers have isLevelEnabled).
  const log = req.log as FastifyBaseLogger & { isLevelEnabled?: (l: string) => boolean };
  if (log.isLevelEnabled && !log.isLevelEnabled(level)) return;
  const path = req.url.split('?')[0] ?? '';
  const procedure = path.startsWith('/trpc/') ? path.slice(6, 206) : undefined;
  req.log[level](
    {
      method: req.method,
      route,
      path: path.slice(0, 300),
      status,
      ms: Math.round(reply.elapsedTime * 10) / 10,
      ...(procedure ? { procedure } : {}),
      ...(req.trail ?? {}),
    },
    'request',
  );
}

/** Builds the HTTP app; listening and shutdown live in server.ts so tests can inject. */
export async function buildApp({ api, logger, ...opts }: AppOptions): Promise<FastifyInstance> {
  const { config } = api.deps;
  const metrics = opts.metrics ?? createMetrics();
  const procedures = new Set(Object.keys(api.router._def.procedures));
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    trustProxy: config.trustProxy,
    bodyLimit: config.bodyLimitBytes,
    requestTimeout: config.requestTimeoutMs,
    http: requestDeadlines(config.requestTimeoutMs),
    frameworkErrors: (err, req, reply) => {
      const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
      const message = FRAMEWORK_MESSAGES[err.code] ?? 'Internal server error';
      if (status >= 500) req.log.error({ err }, 'request failed');
      return sendError(req, reply, status, message);
    },
    // Our own ids only: a client-chosen id could forge log lines.
    requestIdHeader: false,
    genReqId: () => randomUUID(),
    // Batch paths are long ("a,b,c,..."); the batch cap bounds them, this bounds the URL.
    routerOptions: { maxParamLength: 4096 },
    // One line per request instead (below), with who and what it was for.
    logController: new LogController({ disableRequestLogging: true }),
  });

  app.decorateRequest('trail', null as unknown as RequestLog);
  app.addHook('onRequest', async (req, reply) => {
    req.trail = {};
    reply.header('x-request-id', req.id);
  });
  app.addHook('onResponse', async (req, reply) => logRequest(req, reply));

  app.setErrorHandler((err: Error & { statusCode?: number; body?: unknown }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    // The rate limiter throws the body it built; send it as is.
    if (status === 429 && err.body) return reply.status(429).send(err.body);
    // Routes outside tRPC (file downloads) meet database outages too: 503, as tRPC calls do.
    if (isServiceUnavailable(err)) {
      req.log.warn({ err }, 'request unavailable');
      return sendError(
        req,
        reply,
        503,
        'The service is temporarily unavailable; try again shortly',
      );
    }
    if (status >= 500) req.log.error({ err }, 'request failed');
    const message = status >= 500 ? 'Internal server error' : err.message;
    return sendError(req, reply, status, message);
  });

  // Fastify's default names the method and path; the caller knows what it asked for.
  app.setNotFoundHandler((req, reply) => sendError(req, reply, 404, 'Not found'));

  app.addHook('onSend', async (_req, reply, payload) => {
    if (reply.statusCode === 503 && !reply.hasHeader('retry-after')) {
      reply.header('retry-after', String(RETRY_AFTER_SECONDS));
    }
    return payload;
  });

  await app.register(cors, {
    origin: config.corsOrigins.length > 0 ? config.corsOrigins : false,
    methods: ['GET', 'POST', 'OPTIONS'],
    allowedHeaders: ['authorization', 'content-type', 'trpc-accept', 'x-trpc-source'],
    maxAge: 600,
  });

  if (config.rateLimitPerMinute > 0) {
    await app.register(rateLimit, {
      global: true,
      max: config.rateLimitPerMinute,
      timeWindow: 60_000,
      ...(api.redis ? { redis: api.redis, nameSpace: 'smartspace:http:' } : {}),
      // Liveness probes must never be throttled into "down".
      allowList: (req) => req.url === '/health' || req.url === '/ready',
      errorResponseBuilder: (req, ctx) => {
        const message = `Too many requests; retry in ${Math.ceil(ctx.ttl / 1000)} s`;
        const body = req.url.startsWith('/trpc')
          ? trpcErrorBody(429, message)
          : { error: message, statusCode: 429 };
        return Object.assign(new Error(message), { statusCode: 429, body });
      },
    });
  }

  // Browsers send Origin on WebSocket handshakes but CORS does not apply to them: without
  // this check any site could open a socket with a victim's token (cross-site hijacking).
  // The web app this server serves connects from its own origin; a page elsewhere cannot
  // make its Origin match the host it connects to. Non-browser clients send no Origin.
  app.addHook('onRequest', async (req, reply) => {
    if (req.headers.upgrade?.toLowerCase() !== 'websocket') return;
    const origin = req.headers.origin;
    if (origin && !config.corsOrigins.includes(origin) && !sameOrigin(origin, req.headers.host)) {
      // The refused upgrade must not leave its socket open (it would also stall shutdown).
      reply.raw.once('finish', () => req.raw.socket.destroy());
      return reply
        .header('connection', 'close')
        .status(403)
        .send({ error: 'Origin not allowed', statusCode: 403 });
    }
  });

  await app.register(websocket, {
    options: { maxPayload: config.realtime.maxPayloadBytes },
  });

  // Before the routes, so its hooks time every one of them.
  await app.register(metricsPlugin, { api, metrics, token: config.metricsToken });

  app.get('/health', async () => ({ status: 'ok' }));

  app.get('/ready', async (_req, reply) => {
    const r = await api.readiness();
    return reply.status(r.ok ? 200 : 503).send({ status: r.ok ? 'ready' : 'not_ready', ...r });
  });

  await app.register(docsPlugin, { router: api.router, maxBatchSize: MAX_BATCH_SIZE });

  await app.register(filesPlugin, { api, bearer });

  // Anthropic- and OpenAI-compatible endpoints under /v1 for existing SDKs (project API keys).
  await app.register(compatPlugin, { api });

  await app.register(webPlugin, {});

  await app.register(trpcPlugin<Context>, {
    mountPath: '/trpc',
    router: api.router,
    maxBatchSize: MAX_BATCH_SIZE,
    maxBodySize: config.files.uploadMaxBytes + MULTIPART_OVERHEAD_BYTES,
    createContext: (req) =>
      api.createContext({
        token: bearer(req.headers.authorization),
        ip: req.ip,
        requestId: req.id,
        userAgent: req.headers['user-agent'],
        trail: req.trail,
      }),
    onError: ({ error, path, ctx }) => {
      const appCode =
        error.cause instanceof AppError
          ? error.cause.code
          : (genericAppCodes[error.code] ?? 'internal');
      metrics.trpcErrors.inc({
        procedure: procedureLabel(procedures, path),
        code: error.code,
        app_code: appCode,
      });
      const trail = ctx?.req.trail as RequestLog | undefined;
      if (trail) trail.appCode ??= appCode;
      if (error.code === 'INTERNAL_SERVER_ERROR') {
        logger.error(
          { err: error.cause ?? error, path, requestId: ctx?.req.requestId },
          'procedure failed',
        );
      } else if (error.code === 'SERVICE_UNAVAILABLE') {
        // The client sees a generic 503; what was unreachable, and how, goes to the logs.
        logger.warn(
          { err: error.cause?.cause ?? error.cause, path, requestId: ctx?.req.requestId },
          'procedure unavailable',
        );
      }
    },
    ws: {
      // Pings reap dead sockets: no pong within pongWaitMs and the socket is closed.
      keepAlive: { enabled: true, pingMs: 15_000, pongWaitMs: 5_000 },
      createContext: ({ req, res, info, ip }) => {
        // Tokens come only in connectionParams, never in the URL (it lands in logs).
        const token = info.connectionParams?.token;
        return api.createSocketContext(
          {
            token: typeof token === 'string' && token.length > 0 ? token : null,
            ip,
            requestId: randomUUID(),
            userAgent: req.headers['user-agent'],
          },
          res,
        );
      },
    },
  });

  return app;
}
