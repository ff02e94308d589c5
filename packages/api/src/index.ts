/**
 * The package boundary: apps import only from here.
 */
import type { inferRouterInputs, inferRouterOutputs } from '@trpc/server';
import { Redis } from 'ioredis';
import { createModelRegistry } from './ai/registry';
import { createChainClient } from './chain/chain';
import type { Config } from './config';
import {
  type Context,
  createContextInner,
  type Deps,
  type Logger,
  type RequestMeta,
} from './context';
import { type DatabaseHandle, openDatabase } from './db/client';
import { createEventBus } from './events/bus';
import { AppError } from './lib/errors';
import {
  memoryRateLimiter,
  postgresRateLimiter,
  type RateLimiter,
  redisRateLimiter,
} from './lib/rate-limit';
import { createMailer, createMailTransport } from './mail/mail';
import { recordAudit } from './modules/audit/audit.service';
import { verifyAccessToken } from './modules/auth/tokens';
import { createReplyRunner } from './modules/chat/replies';
import { sweepOrphanBlobs } from './modules/files/files.service';
import { createGateway } from './modules/gateway/gateway';
import { createDepositWatcher, type DepositWatcher } from './modules/payments/watcher';
import { createRunner } from './modules/runs/runner';
import {
  type ConnectionRegistry,
  createConnectionRegistry,
  type SocketLike,
} from './realtime/connections';
import { type AppRouter, appRouter } from './router';
import { type BlobStorage, createStorage } from './storage/storage';
import { createCallerFactory } from './trpc';

export type { AppRouter } from './router';
export type RouterInputs = inferRouterInputs<AppRouter>;
export type RouterOutputs = inferRouterOutputs<AppRouter>;
export type { Config } from './config';
export { ConfigError, loadConfig } from './config';
export type { Context, Logger, RequestMeta } from './context';
export type { DatabaseHandle } from './db/client';
export { openDatabase } from './db/client';
export {
  describeAuth,
  type OpenApiDocument,
  type OpenApiOptions,
  openApiDocument,
} from './docs/openapi';
export { describeProcedures, type ProcedureDoc, type ProcedureKind } from './docs/procedures';
export type { Page } from './lib/pagination';
export { isServiceUnavailable } from './lib/unavailable';
export { latestOutboxMail } from './mail/outbox';
export type { Session } from './modules/auth/auth.service';
export { findReadableFile, type StoredFile } from './modules/files/files.service';
export type { Payment } from './modules/payments/payments.dto';
export type { Wallet } from './modules/payments/wallets.service';
export type { Member, Project } from './modules/projects/projects.service';
export type { ProjectRole } from './modules/projects/roles';
export type { User } from './modules/users/users.dto';
export { CloseCode, HANDSHAKE_GRACE_MS } from './realtime/connections';
export type { BlobStorage, ByteRange } from './storage/storage';
export type { AuthLevel, ProcedureMeta } from './trpc';
export { AppError, appRouter };

export const createCaller = createCallerFactory(appRouter);

export interface Readiness {
  ok: boolean;
  database: 'up' | 'down';
  pendingMigrations: number | null;
}

export interface Api {
  router: AppRouter;
  deps: Deps;
  database: DatabaseHandle;
  /** Shared Redis connection when REDIS_URL is set (the host reuses it for HTTP limits). */
  redis: Redis | null;
  createContext(req: RequestMeta): Context;
  /**
   * Context for a WebSocket connection, authenticated from connectionParams.token. Called
   * when the socket opens (no token yet) and again with its connectionParams: until a valid
   * token arrives it counts against its address's WS_MAX_ANONYMOUS_PER_IP (4008 past it) and
   * is closed (4003) after WS_AUTH_TIMEOUT_MS. Never rejects for a bad token (calls then
   * answer UNAUTHORIZED, so clients do not spin reconnecting); rejects, and closes the socket
   * (4008), when the user has too many sockets open.
   */
  createSocketContext(req: RequestMeta, socket: SocketLike): Promise<Context>;
  connections: ConnectionRegistry;
  /** Scans the chain for USDC deposits; null when DEPOSIT_ADDRESS is not configured. */
  paymentWatcher: DepositWatcher | null;
  readiness(): Promise<Readiness>;
  close(): Promise<void>;
}

const silentLog: Logger = { error() {}, warn() {}, info() {} };

export async function createApi(opts: {
  config: Config;
  log?: Logger;
  /** An already-open database (tests share one); otherwise opened from config. */
  database?: DatabaseHandle;
  /** Apply pending migrations first (default true). */
  migrate?: boolean;
  /** Pause between the mock model's chunks (tests and benchmarks set it). */
  mockChunkDelayMs?: number;
  /** Blob storage for files; default from config (S3 or DATA_DIR/files). */
  storage?: BlobStorage;
}): Promise<Api> {
  const { config } = opts;
  const database =
    opts.database ??
    (await openDatabase({
      url: config.databaseUrl,
      dataDir: config.dataDir,
      poolSize: config.databasePoolSize,
      connectTimeoutMs: config.databaseConnectTimeoutMs,
      statementTimeoutMs: config.databaseStatementTimeoutMs,
    }));
  if (opts.migrate !== false) await database.migrate();

  let redis: Redis | null = null;
  let limiter: RateLimiter;
  if (config.redisUrl) {
    redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 2, enableOfflineQueue: true });
    limiter = redisRateLimiter(redis);
  } else {
    limiter = memoryRateLimiter();
  }
  // Limits that must hold across instances (policy rates, sign-in attempts): Redis when
  // configured, else PostgreSQL; PGlite is one process, so memory is already shared.
  const sharedLimiter =
    redis !== null
      ? limiter
      : database.kind === 'postgres'
        ? postgresRateLimiter(database.db)
        : limiter;
  const bus = await createEventBus(database);
  const connections = await createConnectionRegistry(database, {
    perUser: config.realtime.maxConnectionsPerUser,
    subscriptionsPerConnection: config.realtime.maxSubscriptionsPerConnection,
    anonymousPerIp: config.realtime.maxAnonymousPerIp,
    authTimeoutMs: config.realtime.authTimeoutMs,
  });
  const log = opts.log ?? silentLog;
  const models = createModelRegistry(config, { mockChunkDelayMs: opts.mockChunkDelayMs });
  const gateway = createGateway({
    db: database.db,
    bus,
    models,
    limiter: sharedLimiter,
    log,
    billingMode: config.billing.mode,
    // Alerts are notifications: recorded after the settlement commits, in their own append.
    onAlert: async (projectId, alert) => {
      await recordAudit({
        db: database.db,
        actorId: null,
        action: 'budgets.alert',
        projectId,
        target: alert.limitId,
        metadata: { ...alert },
      });
    },
  });
  const replies = await createReplyRunner(database, {
    db: database.db,
    bus,
    models,
    gateway,
    log,
    maxOutputTokens: config.chat.maxOutputTokens,
  });
  const runner = await createRunner(database, {
    db: database.db,
    bus,
    gateway,
    models,
    log,
    maxConcurrentPerProject: config.runs.maxConcurrentPerProject,
    maxOutputTokens: config.runs.maxOutputTokens,
  });
  const mail = createMailer(createMailTransport(config, { db: database.db, log }), log);
  const chain = createChainClient(config.chain);
  const storage = opts.storage ?? createStorage(config.files);
  const deps: Deps = {
    db: database.db,
    config,
    limiter,
    sharedLimiter,
    log,
    bus,
    models,
    gateway,
    replies,
    runner,
    mail,
    chain,
    storage,
  };

  // Replies and model calls a dead process left in flight are failed and their
  // reservations released: at start-up, then periodically.
  const sweepReplies = () =>
    Promise.all([
      replies.sweep().catch((err: unknown) => log.error({ err }, 'reply sweep failed')),
      gateway.sweep().catch((err: unknown) => log.error({ err }, 'reservation sweep failed')),
      runner.sweep().catch((err: unknown) => log.error({ err }, 'run sweep failed')),
    ]);
  await sweepReplies();
  const sweepTimer = setInterval(sweepReplies, 15_000);
  sweepTimer.unref();

  const pruneEvents = () =>
    bus
      .prune(config.realtime.eventRetentionMs)
      .catch((err: unknown) => log.error({ err }, 'event retention failed'));
  const pruneTimer = setInterval(pruneEvents, Math.min(config.realtime.eventRetentionMs, 600_000));
  pruneTimer.unref();

  // Blobs no file row refers to (a crash between write and insert, deleted projects). The
  // hour of grace is far longer than any upload request may take.
  const sweepBlobs = () =>
    sweepOrphanBlobs({ db: database.db, storage, olderThanMs: 3_600_000 }).catch((err: unknown) =>
      log.error({ err }, 'orphan blob sweep failed'),
    );
  const blobTimer = setInterval(sweepBlobs, 3_600_000);
  blobTimer.unref();

  // One instance at a time scans (advisory lock); the others stand by to take over.
  let paymentWatcher: DepositWatcher | null = null;
  if (config.chain.depositAddress) {
    paymentWatcher = createDepositWatcher({ database, chain, log });
    paymentWatcher.start(config.chain.watchIntervalMs);
  }

  return {
    router: appRouter,
    deps,
    database,
    redis,
    createContext: (req) => createContextInner(deps, req),
    connections,
    paymentWatcher,
    async createSocketContext(req, socket) {
      // Signature and claims only (no database): registering before the session check means
      // a session that ends right now still reaches this socket through the registry.
      const claims = req.token ? await verifyAccessToken(config.jwt, req.token) : null;
      const connection = connections.add({
        socket,
        ip: req.ip,
        userId: claims?.userId ?? null,
        sessionId: claims?.sessionId ?? null,
        expiresAt: claims?.expiresAt ?? null,
      });
      // The registry closed it (4008), or it closed while its token was being verified.
      if (!connection) {
        throw new AppError(
          'realtime.too_many_connections',
          'Too many open connections for this user',
        );
      }
      return createContextInner(deps, req, connection);
    },
    async readiness() {
      try {
        const pending = await database.pendingMigrations();
        return { ok: pending === 0, database: 'up', pendingMigrations: pending };
      } catch {
        return { ok: false, database: 'down', pendingMigrations: null };
      }
    },
    async close() {
      clearInterval(pruneTimer);
      clearInterval(sweepTimer);
      clearInterval(blobTimer);
      await paymentWatcher?.stop();
      await replies.close();
      await runner.close();
      // Drains mail still being sent (a reset link asked for just before shutdown).
      await mail.close();
      await connections.close();
      await bus.close();
      await limiter.close();
      if (sharedLimiter !== limiter) await sharedLimiter.close();
      if (!opts.database) await database.close();
    },
  };
}
