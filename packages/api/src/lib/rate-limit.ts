import { eq, lt, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { rateLimitWindows } from './rate-limit.table';

/**
 * Fixed-window counters. In memory by default (one process); in Redis when REDIS_URL is set,
 * so every instance shares the same counts.
 */
export interface RateLimitResult {
  allowed: boolean;
  remaining: number;
  retryAfterMs: number;
}

export interface RateLimiter {
  /**
   * Counts `cost` (default 1: one request; or tokens) on `key` and says whether the total
   * is within `limit` per `windowMs`.
   */
  hit(key: string, limit: number, windowMs: number, cost?: number): Promise<RateLimitResult>;
  reset(key: string): Promise<void>;
  close(): Promise<void>;
}

export function memoryRateLimiter(): RateLimiter {
  const windows = new Map<string, { count: number; resetAt: number }>();
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [key, w] of windows) if (w.resetAt <= now) windows.delete(key);
  }, 60_000);
  sweep.unref();
  return {
    async hit(key, limit, windowMs, cost = 1) {
      const now = Date.now();
      let w = windows.get(key);
      if (!w || w.resetAt <= now) {
        w = { count: 0, resetAt: now + windowMs };
        windows.set(key, w);
      }
      w.count += cost;
      return {
        allowed: w.count <= limit,
        remaining: Math.max(0, limit - w.count),
        retryAfterMs: w.count <= limit ? 0 : w.resetAt - now,
      };
    },
    async reset(key) {
      windows.delete(key);
    },
    async close() {
      clearInterval(sweep);
    },
  };
}

/** The subset of an ioredis client this needs. */
export interface RedisLike {
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
  del(key: string): Promise<unknown>;
  quit(): Promise<unknown>;
}

// INCRBY and set the expiry on the first hit, atomically; answers [count, ttl ms].
const HIT_SCRIPT = `
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
if n == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}`;

export function redisRateLimiter(redis: RedisLike, prefix = 'smartspace:rl:'): RateLimiter {
  return {
    async hit(key, limit, windowMs, cost = 1) {
      const [count, ttl] = (await redis.eval(HIT_SCRIPT, 1, prefix + key, windowMs, cost)) as [
        number,
        number,
      ];
      return {
        allowed: count <= limit,
        remaining: Math.max(0, limit - count),
        retryAfterMs: count <= limit ? 0 : ttl,
      };
    },
    async reset(key) {
      await redis.del(prefix + key);
    },
    async close() {
      await redis.quit();
    },
  };
}

/**
 * Counters in PostgreSQL, for limits that must hold across instances when there is no
 * Redis (policy requests/tokens per minute, sign-in attempts): one upsert per hit.
 */
export function postgresRateLimiter(db: Db): RateLimiter {
  const prune = setInterval(() => {
    void db
      .delete(rateLimitWindows)
      .where(lt(rateLimitWindows.windowStart, new Date(Date.now() - 3_600_000)))
      .catch(() => {});
  }, 300_000);
  prune.unref();
  return {
    async hit(key, limit, windowMs, cost = 1) {
      const now = Date.now();
      const start = now - (now % windowMs);
      const [row] = await db
        .insert(rateLimitWindows)
        .values({ key, windowStart: new Date(start), count: cost })
        .onConflictDoUpdate({
          target: [rateLimitWindows.key, rateLimitWindows.windowStart],
          set: { count: sql`${rateLimitWindows.count} + ${cost}` },
        })
        .returning({ count: rateLimitWindows.count });
      const count = row?.count ?? cost;
      return {
        allowed: count <= limit,
        remaining: Math.max(0, limit - count),
        retryAfterMs: count <= limit ? 0 : start + windowMs - now,
      };
    },
    async reset(key) {
      await db.delete(rateLimitWindows).where(eq(rateLimitWindows.key, key));
    },
    async close() {
      clearInterval(prune);
    },
  };
}
