import type { Config } from './config';
import type { Db } from './db/client';
import type { RateLimiter } from './lib/rate-limit';
import { type AuthUser, authenticate } from './modules/auth/auth.service';

/** The pino-compatible subset of a logger that the api uses. */
export interface Logger {
  error(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
}

/** Long-lived things every request shares. */
export interface Deps {
  db: Db;
  config: Config;
  limiter: RateLimiter;
  log: Logger;
}

/** What the transport knows about the caller. */
export interface RequestMeta {
  /** Bearer access token from the Authorization header or WebSocket connectionParams. */
  token: string | null;
  ip: string;
  requestId: string;
  userAgent?: string | undefined;
}

export interface Context extends Deps {
  req: RequestMeta;
  /** The signed-in user, or null; verified once per request and then remembered. */
  getUser(): Promise<AuthUser | null>;
}

/** Builds a context from plain values: the seam tests and every transport go through. */
export function createContextInner(deps: Deps, req: RequestMeta): Context {
  let user: Promise<AuthUser | null> | undefined;
  return {
    ...deps,
    req,
    getUser() {
      if (!req.token) return Promise.resolve(null);
      user ??= authenticate({ db: deps.db, config: deps.config, token: req.token });
      return user;
    },
  };
}
