/**
 * The package boundary: apps import only from here.
 */
import type { inferRouterInputs, inferRouterOutputs } from '@trpc/server';
import { Redis } from 'ioredis';
import type { Config } from './config';
import {
  type Context,
  createContextInner,
  type Deps,
  type Logger,
  type RequestMeta,
} from './context';
import { type DatabaseHandle, openDatabase } from './db/client';
import { memoryRateLimiter, type RateLimiter, redisRateLimiter } from './lib/rate-limit';
import { type AppRouter, appRouter } from './router';
import { createCallerFactory } from './trpc';

export type { AppRouter } from './router';
export type RouterInputs = inferRouterInputs<AppRouter>;
export type RouterOutputs = inferRouterOutputs<AppRouter>;
export type { Config } from './config';
export { ConfigError, loadConfig } from './config';
export type { Context, Logger, RequestMeta } from './context';
export type { DatabaseHandle } from './db/client';
export { openDatabase } from './db/client';
export { AppError } from './lib/errors';
export type { Page } from './lib/pagination';
export type { Session } from './modules/auth/auth.service';
export type { Member, Project } from './modules/projects/projects.service';
export type { ProjectRole } from './modules/projects/roles';
export type { User } from './modules/users/users.dto';
export { appRouter };

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
}): Promise<Api> {
  const { config } = opts;
  const database =
    opts.database ??
    (await openDatabase({
      url: config.databaseUrl,
      dataDir: config.dataDir,
      poolSize: config.databasePoolSize,
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
  const deps: Deps = { db: database.db, config, limiter, log: opts.log ?? silentLog };

  return {
    router: appRouter,
    deps,
    database,
    redis,
    createContext: (req) => createContextInner(deps, req),
    async readiness() {
      try {
        const pending = await database.pendingMigrations();
        return { ok: pending === 0, database: 'up', pendingMigrations: pending };
      } catch {
        return { ok: false, database: 'down', pendingMigrations: null };
      }
    },
    async close() {
      await limiter.close();
      if (!opts.database) await database.close();
    },
  };
}
