import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Address, getAddress, isAddress, zeroAddress } from 'viem';
import { z } from 'zod';
import {
  MOCK_MODEL_ID,
  MODEL_IDS,
  type ModelPriceOverrides,
  modelPriceOverridesSchema,
} from './ai/models';

/**
 * The one module that reads the environment (ARCHITECTURE.md). Everything else receives a
 * `Config`. A bad or missing setting stops start-up with a message naming the variable.
 */

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const list = z.string().transform((v) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const json = z.string().transform((v, ctx): unknown => {
  try {
    return JSON.parse(v);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be valid JSON' });
    return z.NEVER;
  }
});

// Arc testnet (viem's `arcTestnet`) and its USDC ERC-20 interface (6 decimals), issue 6.
const ARC_TESTNET_CHAIN_ID = 5042002;
const ARC_TESTNET_USDC = '0x3600000000000000000000000000000000000000';
// Mixed case must carry a valid EIP-55 checksum; stored and compared checksummed.
const evmAddress = z
  .string()
  .trim()
  .refine(
    (v) => isAddress(v),
    'must be a 0x-prefixed 20-byte address (valid checksum if mixed-case)',
  )
  .transform((v) => getAddress(v));

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: int(0, 65535).default(3000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  DATABASE_POOL_SIZE: int(1, 500).default(10),
  DATABASE_CONNECT_TIMEOUT_MS: int(100, 600_000).default(5_000),
  DATABASE_STATEMENT_TIMEOUT_MS: int(100, 3_600_000).default(15_000),
  DATA_DIR: z.string().min(1).default('./.data'),
  JWT_SECRET: z.string().optional(),
  JWT_ISSUER: z.string().min(1).default('smartspace'),
  JWT_AUDIENCE: z.string().min(1).default('smartspace-api'),
  ACCESS_TOKEN_TTL_SECONDS: int(30, 3600).default(900),
  REFRESH_TOKEN_TTL_DAYS: int(1, 365).default(30),
  CORS_ORIGINS: list.default([]),
  TRUST_PROXY: bool.default(false),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'must be a redis:// URL')
    .optional(),
  RATE_LIMIT_PER_MINUTE: int(0, 1_000_000).default(600),
  LOGIN_ATTEMPTS_PER_15_MINUTES: int(1, 10_000).default(10),
  BODY_LIMIT_BYTES: int(1024, 100 * 1024 * 1024).default(1024 * 1024),
  REQUEST_TIMEOUT_MS: int(1000, 600_000).default(30_000),
  ADMIN_EMAILS: list.default([]),
  WS_MAX_CONNECTIONS_PER_USER: int(1, 10_000).default(20),
  WS_MAX_SUBSCRIPTIONS_PER_CONNECTION: int(1, 10_000).default(100),
  WS_MAX_PAYLOAD_BYTES: int(1024, 16 * 1024 * 1024).default(64 * 1024),
  // Sockets not (yet) signed in: how many one address may hold, and for how long (item 11).
  WS_MAX_ANONYMOUS_PER_IP: int(1, 10_000).default(20),
  WS_AUTH_TIMEOUT_MS: int(100, 600_000).default(10_000),
  EVENT_RETENTION_HOURS: z.coerce
    .number()
    .positive()
    .max(24 * 365)
    .default(72),
  CHAT_MAX_OUTPUT_TOKENS: int(1, 128_000).default(4096),
  BILLING_MODE: z.enum(['off', 'prepaid']).default('off'),
  RUNS_MAX_CONCURRENT_PER_PROJECT: int(1, 1000).default(4),
  RUN_MAX_OUTPUT_TOKENS: int(1, 128_000).default(4096),
  ANTHROPIC_API_KEY: z.string().trim().min(1).optional(),
  ANTHROPIC_BASE_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http(s):// URL' })
    .optional(),
  ANTHROPIC_MAX_RETRIES: int(0, 10).default(2),
  ANTHROPIC_TIMEOUT_MS: int(1000, 3_600_000).default(600_000),
  DEFAULT_MODEL: z
    .string()
    .refine((id) => MODEL_IDS.includes(id), `must be one of: ${MODEL_IDS.join(', ')}`)
    .optional(),
  // Unset: on outside production, off in production.
  MOCK_MODEL_ENABLED: bool.optional(),
  MODEL_PRICES: json.pipe(modelPriceOverridesSchema).default({}),
  CHAIN_ID: int(1, Number.MAX_SAFE_INTEGER).default(ARC_TESTNET_CHAIN_ID),
  CHAIN_RPC_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s):// URL' }).optional(),
  USDC_ADDRESS: evmAddress.default(ARC_TESTNET_USDC),
  DEPOSIT_ADDRESS: evmAddress
    .refine((a) => a !== zeroAddress, 'must not be the zero address')
    .optional(),
  CHAIN_CONFIRMATIONS: int(1, 10_000).default(3),
  PAYMENTS_WATCH_INTERVAL_MS: int(500, 3_600_000).default(15_000),
  // Unset: mail is kept in the mail_outbox table instead of being sent.
  SMTP_URL: z
    .string()
    .regex(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL')
    .optional(),
  MAIL_FROM: z
    .string()
    .trim()
    .regex(/^[^\r\n]*@[^\r\n]*$/, 'must be an address such as Name <no-reply@example.com>')
    .default('SmartSpace <no-reply@localhost>'),
  PUBLIC_APP_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http(s):// URL' })
    .default('http://localhost:5173'),
  UPLOAD_MAX_BYTES: int(1, 5 * 1024 * 1024 * 1024).default(25 * 1024 * 1024),
  // Set S3_BUCKET to store files in S3-compatible object storage instead of DATA_DIR/files.
  S3_BUCKET: z.string().trim().min(3).max(63).optional(),
  S3_ENDPOINT: z.url({ protocol: /^https?$/, error: 'must be an http(s):// URL' }).optional(),
  S3_REGION: z.string().trim().min(1).default('us-east-1'),
  S3_ACCESS_KEY_ID: z.string().trim().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().trim().min(1).optional(),
  S3_FORCE_PATH_STYLE: bool.default(false),
});

export type Env = z.input<typeof envSchema>;

export interface Config {
  nodeEnv: 'development' | 'production' | 'test';
  host: string;
  port: number;
  logLevel: string;
  databaseUrl: string | undefined;
  databasePoolSize: number;
  /**
   * Opening a PostgreSQL connection (TCP, TLS, sign-in) may take this long; a query also waits
   * at most this long for a free pool connection.
   */
  databaseConnectTimeoutMs: number;
  /**
   * PostgreSQL's statement_timeout on pool connections. A query with no answer within the
   * connect timeout + this + 0.5 s of being issued (a server or network that stopped
   * answering) is given up client-side.
   */
  databaseStatementTimeoutMs: number;
  dataDir: string;
  jwt: {
    secret: Uint8Array<ArrayBuffer>;
    issuer: string;
    audience: string;
    accessTtlSeconds: number;
  };
  refreshTokenTtlDays: number;
  corsOrigins: string[];
  trustProxy: boolean;
  redisUrl: string | undefined;
  rateLimitPerMinute: number;
  loginAttemptsPer15Minutes: number;
  bodyLimitBytes: number;
  requestTimeoutMs: number;
  adminEmails: string[];
  anthropic: {
    /** Unset: Claude models are unavailable (the mock model stands in). */
    apiKey: string | undefined;
    baseUrl: string | undefined;
    maxRetries: number;
    timeoutMs: number;
  };
  models: {
    /** As configured; the model registry resolves the effective default. */
    defaultModel: string | undefined;
    mockEnabled: boolean;
    prices: ModelPriceOverrides;
  };
  realtime: {
    maxConnectionsPerUser: number;
    maxSubscriptionsPerConnection: number;
    maxPayloadBytes: number;
    /** Sockets without a valid access token one address may hold past their first 2 s. */
    maxAnonymousPerIp: number;
    /** A socket still without a valid access token this long after opening is closed. */
    authTimeoutMs: number;
    /** Events older than this are pruned; resuming from before it is refused. */
    eventRetentionMs: number;
  };
  chat: { maxOutputTokens: number };
  /** off: spend is metered and budgets enforced, no balance needed; prepaid: calls need balance. */
  billing: { mode: 'off' | 'prepaid' };
  runs: { maxConcurrentPerProject: number; maxOutputTokens: number };
  mail: {
    /** Unset: messages are stored in mail_outbox (development); holds credentials, never log it. */
    smtpUrl: string | undefined;
    from: string;
  };
  /** Base URL of the web app, without a trailing slash; emailed links point into it. */
  publicAppUrl: string;
  files: {
    /** Largest upload accepted, in bytes. */
    uploadMaxBytes: number;
    /** Local blob storage (used when `s3` is unset): DATA_DIR/files. */
    dir: string;
    /** S3-compatible object storage; credentials unset = the AWS SDK's default chain. */
    s3:
      | {
          bucket: string;
          endpoint: string | undefined;
          region: string;
          credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
          forcePathStyle: boolean;
        }
      | undefined;
  };
  /** USDC deposits on an EVM chain (Arc testnet by default). */
  chain: {
    id: number;
    /** Unset: the chain's public RPC (only known for Arc testnet; other chains require it). */
    rpcUrl: string | undefined;
    usdcAddress: Address;
    /** Unset: deposits are not accepted and the deposit watcher does not run. */
    depositAddress: Address | undefined;
    confirmations: number;
    watchIntervalMs: number;
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const MIN_SECRET_LENGTH = 32;

/** Reads and validates settings; `env` defaults to the process environment. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Treat empty strings as unset, so `FOO=` in an .env file means "use the default".
  const cleaned = Object.fromEntries(
    Object.entries(env).filter(([, v]) => v !== undefined && v !== ''),
  );
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  if (e.CHAIN_ID !== ARC_TESTNET_CHAIN_ID && !e.CHAIN_RPC_URL) {
    throw new ConfigError(
      `Invalid configuration:\n  CHAIN_RPC_URL: required when CHAIN_ID is not ${ARC_TESTNET_CHAIN_ID} (Arc testnet)`,
    );
  }
  const dataDir = resolve(e.DATA_DIR);
  const mockEnabled = e.MOCK_MODEL_ENABLED ?? e.NODE_ENV !== 'production';
  if (e.DEFAULT_MODEL === MOCK_MODEL_ID && !mockEnabled) {
    throw new ConfigError(
      `Invalid configuration:\n  DEFAULT_MODEL: ${MOCK_MODEL_ID} is disabled (set MOCK_MODEL_ENABLED=true to allow it)`,
    );
  }
  return {
    nodeEnv: e.NODE_ENV,
    host: e.HOST,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    databaseUrl: e.DATABASE_URL,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    databaseConnectTimeoutMs: e.DATABASE_CONNECT_TIMEOUT_MS,
    databaseStatementTimeoutMs: e.DATABASE_STATEMENT_TIMEOUT_MS,
    dataDir,
    jwt: {
      secret: jwtSecret(e.JWT_SECRET, e.NODE_ENV, dataDir),
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
      accessTtlSeconds: e.ACCESS_TOKEN_TTL_SECONDS,
    },
    refreshTokenTtlDays: e.REFRESH_TOKEN_TTL_DAYS,
    corsOrigins: e.CORS_ORIGINS,
    trustProxy: e.TRUST_PROXY,
    redisUrl: e.REDIS_URL,
    rateLimitPerMinute: e.RATE_LIMIT_PER_MINUTE,
    loginAttemptsPer15Minutes: e.LOGIN_ATTEMPTS_PER_15_MINUTES,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    adminEmails: e.ADMIN_EMAILS.map((a) => a.toLowerCase()),
    anthropic: {
      apiKey: e.ANTHROPIC_API_KEY,
      baseUrl: e.ANTHROPIC_BASE_URL,
      maxRetries: e.ANTHROPIC_MAX_RETRIES,
      timeoutMs: e.ANTHROPIC_TIMEOUT_MS,
    },
    models: { defaultModel: e.DEFAULT_MODEL, mockEnabled, prices: e.MODEL_PRICES },
    realtime: {
      maxConnectionsPerUser: e.WS_MAX_CONNECTIONS_PER_USER,
      maxSubscriptionsPerConnection: e.WS_MAX_SUBSCRIPTIONS_PER_CONNECTION,
      maxPayloadBytes: e.WS_MAX_PAYLOAD_BYTES,
      maxAnonymousPerIp: e.WS_MAX_ANONYMOUS_PER_IP,
      authTimeoutMs: e.WS_AUTH_TIMEOUT_MS,
      eventRetentionMs: Math.round(e.EVENT_RETENTION_HOURS * 3_600_000),
    },
    chat: { maxOutputTokens: e.CHAT_MAX_OUTPUT_TOKENS },
    billing: { mode: e.BILLING_MODE },
    runs: {
      maxConcurrentPerProject: e.RUNS_MAX_CONCURRENT_PER_PROJECT,
      maxOutputTokens: e.RUN_MAX_OUTPUT_TOKENS,
    },
    mail: { smtpUrl: e.SMTP_URL, from: e.MAIL_FROM },
    publicAppUrl: e.PUBLIC_APP_URL.replace(/\/+$/, ''),
    files: {
      uploadMaxBytes: e.UPLOAD_MAX_BYTES,
      dir: join(dataDir, 'files'),
      s3: e.S3_BUCKET
        ? {
            bucket: e.S3_BUCKET,
            endpoint: e.S3_ENDPOINT,
            region: e.S3_REGION,
            credentials: s3Credentials(e.S3_ACCESS_KEY_ID, e.S3_SECRET_ACCESS_KEY),
            forcePathStyle: e.S3_FORCE_PATH_STYLE,
          }
        : undefined,
    },
    chain: {
      id: e.CHAIN_ID,
      rpcUrl: e.CHAIN_RPC_URL,
      usdcAddress: e.USDC_ADDRESS as Address,
      depositAddress: e.DEPOSIT_ADDRESS as Address | undefined,
      confirmations: e.CHAIN_CONFIRMATIONS,
      watchIntervalMs: e.PAYMENTS_WATCH_INTERVAL_MS,
    },
  };
}

function s3Credentials(
  accessKeyId: string | undefined,
  secretAccessKey: string | undefined,
): { accessKeyId: string; secretAccessKey: string } | undefined {
  if (accessKeyId && secretAccessKey) return { accessKeyId, secretAccessKey };
  if (accessKeyId || secretAccessKey) {
    throw new ConfigError(
      'Invalid configuration:\n  S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY: set both or neither',
    );
  }
  return undefined;
}

/**
 * In production the secret must be given. Elsewhere one is generated once and kept in the
 * data directory, so restarts keep sessions valid and no secret ever lives in the code.
 */
function jwtSecret(
  given: string | undefined,
  nodeEnv: string,
  dataDir: string,
): Uint8Array<ArrayBuffer> {
  if (given !== undefined) {
    if (given.length < MIN_SECRET_LENGTH) {
      throw new ConfigError(
        `Invalid configuration:\n  JWT_SECRET: must be at least ${MIN_SECRET_LENGTH} characters`,
      );
    }
    return new TextEncoder().encode(given);
  }
  if (nodeEnv === 'production') {
    throw new ConfigError(
      'Invalid configuration:\n  JWT_SECRET: required when NODE_ENV=production (at least 32 characters)',
    );
  }
  const file = join(dataDir, 'jwt-secret');
  try {
    const stored = readFileSync(file, 'utf8').trim();
    if (stored.length >= MIN_SECRET_LENGTH) return new TextEncoder().encode(stored);
  } catch {
    // not generated yet
  }
  const secret = randomBytes(48).toString('base64url');
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return new TextEncoder().encode(secret);
}
