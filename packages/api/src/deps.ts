import { Redis } from 'ioredis';
import { createModelRegistry } from './ai/registry';
import { createChainClient } from './chain/chain';
import type { Config } from './config';
import type { Deps } from './context';
import { type DatabaseHandle, type Db, openDatabase } from './db/client';
import { createEventBus } from './events/bus';
import type { Lifecycle } from './lib/lifecycle';
import type { Logger } from './lib/logger';
import {
  memoryRateLimiter,
  postgresRateLimiter,
  type RateLimiter,
  redisRateLimiter,
} from './lib/rate-limit';
import { createMailer, createMailTransport } from './mail/mail';
import { createKeyUsageRecorder } from './modules/api-keys/api-keys.service';
import { recordAudit } from './modules/audit/audit.service';
import { createSessionCache } from './modules/auth/session-cache';
import { createReplyRunner } from './modules/chat/replies';
import {
  createGateway,
  type GatewayCallSummary,
  type GatewayDeps,
} from './modules/gateway/gateway';
import { mcpRuntime } from './modules/mcp/runtime';
import { createPolicyCache } from './modules/policies/policies.cache';
import type { RunObservers } from './modules/runs/run-context';
import { createRunner } from './modules/runs/runner';
import { cancelRunOfReply } from './modules/runs/runs.service';
import { type ConnectionRegistry, createConnectionRegistry } from './realtime/connections';
import { type BlobStorage, createStorage } from './storage/storage';

/** Opens the database the config names; the caller owns (and closes) it. */
export function openConfiguredDatabase(config: Config): Promise<DatabaseHandle> {
  return openDatabase({
    url: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: config.databasePoolSize,
    connectTimeoutMs: config.databaseConnectTimeoutMs,
    statementTimeoutMs: config.databaseStatementTimeoutMs,
    preparedStatements: config.databasePreparedStatements,
  });
}

// Limits that must hold across instances (policy rates, sign-in attempts): Redis when
// configured, else PostgreSQL; PGlite is one process, so memory is already shared.
function openLimiters(config: Config, database: DatabaseHandle, life: Lifecycle) {
  if (config.redisUrl) {
    const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 2, enableOfflineQueue: true });
    const limiter = redisRateLimiter(redis);
    life.defer('rate limiter', () => limiter.close());
    return { redis, limiter, sharedLimiter: limiter };
  }
  const limiter: RateLimiter = memoryRateLimiter();
  const sharedLimiter = database.kind === 'postgres' ? postgresRateLimiter(database.db) : limiter;
  if (sharedLimiter !== limiter) life.defer('shared rate limiter', () => sharedLimiter.close());
  life.defer('rate limiter', () => limiter.close());
  return { redis: null, limiter, sharedLimiter };
}

function buildGateway(
  config: Config,
  db: Db,
  deps: Pick<GatewayDeps, 'bus' | 'models' | 'limiter' | 'log' | 'policies' | 'onCall' | 'listen'>,
) {
  return createGateway({
    ...deps,
    db,
    billingMode: config.billing.mode,
    lease: { calls: config.billing.leaseCalls, idleMs: config.billing.leaseIdleMs },
    // Alerts are notifications: recorded after the settlement commits, in their own append.
    onAlert: async (projectId, alert) => {
      await recordAudit({
        db,
        actorId: null,
        action: 'budgets.alert',
        projectId,
        target: alert.limitId,
        metadata: { ...alert },
      });
    },
  });
}

/** Runs before replies on the stack, so replies stop first on close, then runs. */
async function startRunners(
  config: Config,
  database: DatabaseHandle,
  life: Lifecycle,
  shared: Pick<Deps, 'bus' | 'models' | 'gateway' | 'log'> & { observe?: RunObservers | undefined },
) {
  const runner = await createRunner(database, {
    ...shared,
    db: database.db,
    maxConcurrentPerProject: config.runs.maxConcurrentPerProject,
    approvals: { ttlMs: config.runs.approvalTimeoutMinutes * 60_000 },
    maxOutputTokens: config.runs.maxOutputTokens,
    mcp: mcpRuntime(config),
  });
  life.defer('run runner', () => runner.close());
  const replies = await createReplyRunner(database, {
    ...shared,
    db: database.db,
    runs: {
      kick: (projectId) => runner.kick(projectId),
      cancelReply: (replyId) =>
        cancelRunOfReply({ db: database.db, bus: shared.bus, runner, replyId }),
    },
    maxOutputTokens: config.chat.maxOutputTokens,
  });
  // Stores replies still streaming as interrupted, before the database closes.
  life.defer('reply runner', () => replies.close());
  return { runner, replies };
}

/** Hooks for metrics: told what happened, never able to change it. */
export interface Observers extends RunObservers {
  gatewayCall?: ((call: GatewayCallSummary) => void) | undefined;
  /** Seconds from an event's publication to its hand-over to this instance's subscribers. */
  eventDelivered?: ((lagSeconds: number) => void) | undefined;
}

export interface BuiltDeps {
  deps: Deps;
  redis: Redis | null;
  connections: ConnectionRegistry;
}

/**
 * Builds what every request shares, deferring each closer as it is built. The build order is
 * the reverse of the close order: replies and runs stop, then mail drains, then sockets, the
 * bus and the limiters close, all before the database.
 */
export async function buildDeps(opts: {
  config: Config;
  database: DatabaseHandle;
  life: Lifecycle;
  log: Logger;
  mockChunkDelayMs?: number | undefined;
  storage?: BlobStorage | undefined;
  observe?: Observers | undefined;
}): Promise<BuiltDeps> {
  const { config, database, life, log } = opts;
  const db = database.db;
  const { redis, limiter, sharedLimiter } = openLimiters(config, database, life);
  const bus = await createEventBus(database, { onDelivered: opts.observe?.eventDelivered });
  life.defer('event bus', () => bus.close());
  const connections = await createConnectionRegistry(database, {
    perUser: config.realtime.maxConnectionsPerUser,
    subscriptionsPerConnection: config.realtime.maxSubscriptionsPerConnection,
    anonymousPerIp: config.realtime.maxAnonymousPerIp,
    authTimeoutMs: config.realtime.authTimeoutMs,
  });
  life.defer('connections', () => connections.close());
  const mail = createMailer(createMailTransport(config, { db, log }), log);
  // Drains mail still being sent (a reset link asked for just before shutdown).
  life.defer('mail', () => mail.close());
  const models = createModelRegistry(config, { mockChunkDelayMs: opts.mockChunkDelayMs });
  const policies = await createPolicyCache({ db, listen: database.listen.bind(database) });
  life.defer('policy cache', () => policies.close());
  const sessions = await createSessionCache({
    ttlMs: config.sessionCacheMs,
    listen: database.listen.bind(database),
  });
  life.defer('session cache', () => sessions.close());
  const gateway = buildGateway(config, db, {
    bus,
    models,
    limiter: sharedLimiter,
    log,
    policies,
    onCall: opts.observe?.gatewayCall,
    listen: database.listen.bind(database),
  });
  // Closed after the runners and replies (deferred before them): their calls settle first.
  life.defer('gateway leases', () => gateway.close());
  const { runner, replies } = await startRunners(config, database, life, {
    bus,
    models,
    gateway,
    log,
    observe: opts.observe,
  });
  const chain = createChainClient(config.chain);
  const storage = opts.storage ?? createStorage(config.files);
  const deps: Deps = {
    db,
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
    sessions,
    keyUsage: createKeyUsageRecorder({
      db,
      onError: (err) => log.warn({ err }, 'could not record when an API key was last used'),
    }),
  };
  return { deps, redis, connections };
}
