import { resolve } from 'node:path';
import { z } from 'zod';
import { bool, httpUrl, int, list, setting } from './lib/settings';
import { mcpConfig } from './modules/mcp/mcp.config';

/** The process and its HTTP surface. */
export const serverConfig = {
  nodeEnv: setting({
    env: 'NODE_ENV',
    schema: z.enum(['development', 'production', 'test']),
    default: 'development',
    doc: '`production` requires `JWT_SECRET`',
  }),
  host: setting({
    env: 'HOST',
    schema: z.string().min(1),
    default: '127.0.0.1',
    doc: 'listen address',
  }),
  port: setting({ env: 'PORT', schema: int(0, 65535), default: '3000', doc: 'listen port' }),
  logLevel: setting({
    env: 'LOG_LEVEL',
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    default: 'info',
    doc: 'pino level',
  }),
  dataDir: setting({
    env: 'DATA_DIR',
    schema: z
      .string()
      .min(1)
      .transform((dir) => resolve(dir)),
    default: './.data',
    doc: 'embedded database, generated development secrets, local file storage',
  }),
  corsOrigins: setting({
    env: 'CORS_ORIGINS',
    schema: list.default([]),
    doc: 'comma-separated browser origins allowed; also checked on WebSocket handshakes',
  }),
  trustProxy: setting({
    env: 'TRUST_PROXY',
    schema: bool,
    default: 'false',
    doc: 'honour X-Forwarded-For',
  }),
  redisUrl: setting({
    env: 'REDIS_URL',
    schema: z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// URL')
      .optional(),
    doc: 'rate-limit counters shared across instances; unset: in-process counters',
  }),
  rateLimitPerMinute: setting({
    env: 'RATE_LIMIT_PER_MINUTE',
    schema: int(0, 1_000_000),
    default: '600',
    doc: 'per IP: HTTP requests and tRPC calls per minute; 0 disables both',
  }),
  bodyLimitBytes: setting({
    env: 'BODY_LIMIT_BYTES',
    schema: int(1024, 100 * 1024 * 1024),
    default: '1048576',
    doc: 'larger request bodies get 413',
  }),
  requestTimeoutMs: setting({
    env: 'REQUEST_TIMEOUT_MS',
    schema: int(1000, 600_000),
    default: '30000',
    doc: 'headers and body must arrive within it; slower requests get 408',
  }),
  publicAppUrl: setting({
    env: 'PUBLIC_APP_URL',
    schema: httpUrl()
      .transform((url) => url.replace(/\/+$/, ''))
      .optional(),
    doc: 'base URL of the web app (emailed links point into it); unset = this server, which serves the app',
  }),
  metricsToken: setting({
    env: 'METRICS_TOKEN',
    schema: z.string().trim().min(16, 'at least 16 characters').optional(),
    doc: 'bearer token GET /metrics requires; unset: /metrics answers loopback clients only',
  }),
  otlpEndpoint: setting({
    env: 'OTEL_EXPORTER_OTLP_ENDPOINT',
    schema: httpUrl().optional(),
    doc: 'OTLP/HTTP collector (e.g. http://127.0.0.1:4318): turns tracing on; the SDK also reads the other OTEL_EXPORTER_OTLP_* variables',
  }),
  otlpTracesEndpoint: setting({
    env: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
    schema: httpUrl().optional(),
    doc: 'the traces endpoint itself (…/v1/traces), instead of OTEL_EXPORTER_OTLP_ENDPOINT',
  }),
  otelServiceName: setting({
    env: 'OTEL_SERVICE_NAME',
    schema: z.string().trim().min(1),
    default: 'smartspace',
    doc: 'service.name of the spans',
  }),
  // MCP tool servers' settings (MCP_*), declared with their module.
  ...mcpConfig,
};
