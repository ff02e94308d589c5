import type { ModelRegistry } from './ai/registry';
import type { ChainClient } from './chain/chain';
import type { Config } from './config';
import type { Db } from './db/client';
import type { EventBus } from './events/bus';
import type { Logger } from './lib/logger';
import type { RateLimiter } from './lib/rate-limit';
import type { Mailer } from './mail/mail';
import { type AuthUser, authenticate } from './modules/auth/auth.service';
import type { ReplyRunner } from './modules/chat/replies';
import type { Gateway } from './modules/gateway/gateway';
import type { Runner } from './modules/runs/runner';
import type { SocketConnection } from './realtime/connections';
import type { BlobStorage } from './storage/storage';

/** Long-lived things every request shares. */
export interface Deps {
  db: Db;
  config: Config;
  /** Per-instance counters (per-IP call limits: cheap, on every call). */
  limiter: RateLimiter;
  /** Counters every instance shares (Redis, else PostgreSQL): sign-in attempts, policies. */
  sharedLimiter: RateLimiter;
  log: Logger;
  bus: EventBus;
  models: ModelRegistry;
  gateway: Gateway;
  replies: ReplyRunner;
  /** viem client for the deposit chain (USDC payments). */
  chain: ChainClient;
  runner: Runner;
  /** Outgoing mail: SMTP when SMTP_URL is set, else the mail_outbox table. */
  mail: Mailer;
  /** File bytes: S3-compatible storage when S3_BUCKET is set, else DATA_DIR/files. */
  storage: BlobStorage;
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
  /** The signed-in user, or null (verified once per HTTP request; on every call over a socket). */
  getUser(): Promise<AuthUser | null>;
  /** Set when the call arrives over a WebSocket. */
  connection: SocketConnection | null;
}

/** Builds a context from plain values: the seam tests and every transport go through. */
export function createContextInner(
  deps: Deps,
  req: RequestMeta,
  connection: SocketConnection | null = null,
): Context {
  let user: Promise<AuthUser | null> | undefined;
  return {
    ...deps,
    req,
    connection,
    getUser() {
      if (!req.token) return Promise.resolve(null);
      // A socket lives for many calls: re-check the session on each, so a call made after
      // the session ended fails even before the socket is closed.
      if (connection) return authenticate({ db: deps.db, config: deps.config, token: req.token });
      user ??= authenticate({ db: deps.db, config: deps.config, token: req.token });
      return user;
    },
  };
}
