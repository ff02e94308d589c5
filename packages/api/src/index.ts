/**
 * The package boundary: apps import only from here.
 */
import type { inferRouterInputs, inferRouterOutputs } from '@trpc/server';
import type { Redis } from 'ioredis';
import type { Config } from './config';
import { type Context, createContextInner, type Deps, type RequestMeta } from './context';
import type { DatabaseHandle } from './db/client';
import { buildDeps, type Observers, openConfiguredDatabase } from './deps';
import { startEventJobs } from './events/events.jobs';
import { AppError } from './lib/errors';
import { createLifecycle } from './lib/lifecycle';
import { type Logger, silentLog } from './lib/logger';
import { startReplyJobs } from './modules/chat/chat.jobs';
import { startFileJobs } from './modules/files/files.jobs';
import { startGatewayJobs } from './modules/gateway/gateway.jobs';
import { startHelpJobs } from './modules/help/help.jobs';
import { startPaymentJobs } from './modules/payments/payments.jobs';
import type { DepositWatcher } from './modules/payments/watcher';
import { startRunJobs } from './modules/runs/runs.jobs';
import type { ConnectionRegistry, SocketLike } from './realtime/connections';
import { type AppRouter, appRouter } from './router';
import { createSocketContext } from './socket-context';
import type { BlobStorage } from './storage/storage';
import { createCallerFactory } from './trpc';

export type { AppRouter } from './router';
export type RouterInputs = inferRouterInputs<AppRouter>;
export type RouterOutputs = inferRouterOutputs<AppRouter>;
export { type FinishReason, finishReason, stopReasonOf, toolCallOut } from './ai/openai-shapes';
export {
  type ChatTurn as ModelChatTurn,
  type ContentBlock as ModelContentBlock,
  ModelError,
  type ModelEvent,
  type ToolSpec as ModelToolSpec,
} from './ai/provider';
export type { Config } from './config';
export { ConfigError, loadConfig } from './config';
export type { Context, RequestMeta, RequestTrail } from './context';
export type { DatabaseHandle } from './db/client';
export { openDatabase } from './db/client';
export type { Observers } from './deps';
export {
  describeAuth,
  type OpenApiDocument,
  type OpenApiOptions,
  openApiDocument,
} from './docs/openapi';
export { describeProcedures, type ProcedureDoc, type ProcedureKind } from './docs/procedures';
export {
  type ErrorShapeOptions,
  type ProcedureCallOptions,
  type RouterProcedure,
  routerErrorShape,
  routerProcedures,
} from './docs/router-internals';
export { genericAppCodes } from './lib/errors';
export type { Logger } from './lib/logger';
export type { Page } from './lib/pagination';
export { setTracingEnabled } from './lib/tracing';
export { isServiceUnavailable } from './lib/unavailable';
export { latestOutboxMail } from './mail/outbox';
export type { ApiKey, CreatedApiKey } from './modules/api-keys/api-keys.dto';
export { authenticateKey, isApiKey } from './modules/api-keys/api-keys.service';
export type { Session } from './modules/auth/auth.dto';
export type {
  ChatEvent,
  Conversation,
  Message,
  ReplyErrorCode,
} from './modules/chat/chat.dto';
export type { StoredFile } from './modules/files/files.dto';
export { findReadableFile } from './modules/files/files.service';
export { estimateInputTokens, estimateOutputTokens } from './modules/gateway/estimate';
export type { Gateway, GatewayCall, GatewayCallSummary } from './modules/gateway/gateway';
export type { Payment } from './modules/payments/payments.dto';
export type { Wallet } from './modules/payments/wallets.service';
export { loadRules as loadPolicyRules } from './modules/policies/policies.service';
export type { Member, Project } from './modules/projects/projects.dto';
export type { ProjectRole } from './modules/projects/roles';
export { roleAtLeast } from './modules/projects/roles';
export type { Run, RunEvent, RunStep } from './modules/runs/runs.dto';
export type { RunErrorCode } from './modules/runs/runs.errors';
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
  /** Hooks for metrics (apps/server's /metrics). */
  observe?: Observers;
}): Promise<Api> {
  const { config } = opts;
  const log = opts.log ?? silentLog;
  const life = createLifecycle(log);
  const database = opts.database ?? (await openConfiguredDatabase(config));
  // A database the caller passed in is theirs to close.
  if (!opts.database) life.defer('database', () => database.close());
  try {
    if (opts.migrate !== false) await database.migrate();
    const { deps, redis, connections } = await buildDeps({
      config,
      database,
      life,
      log,
      mockChunkDelayMs: opts.mockChunkDelayMs,
      storage: opts.storage,
      observe: opts.observe,
    });
    const { bus, gateway, replies, runner, storage, chain } = deps;
    await Promise.all([
      startReplyJobs({ life, replies }),
      startGatewayJobs({ life, gateway }),
      startRunJobs({ life, runner }),
    ]);
    startEventJobs({ life, bus, retentionMs: config.realtime.eventRetentionMs });
    startFileJobs({ life, db: database.db, storage });
    await startHelpJobs({ life, db: database.db, settings: config.help, log });
    const paymentWatcher = startPaymentJobs({ life, database, chain, config: config.chain, log });
    return {
      router: appRouter,
      deps,
      database,
      redis,
      createContext: (req) => createContextInner(deps, req),
      connections,
      paymentWatcher,
      createSocketContext: (req, socket) => createSocketContext({ deps, connections }, req, socket),
      async readiness() {
        try {
          const pending = await database.pendingMigrations();
          return { ok: pending === 0, database: 'up', pendingMigrations: pending };
        } catch {
          return { ok: false, database: 'down', pendingMigrations: null };
        }
      },
      close: () => life.closeAll(),
    };
  } catch (err) {
    // Half-built: let go of what was opened so far (the error that stopped us wins).
    await life.closeAll().catch(() => {});
    throw err;
  }
}
