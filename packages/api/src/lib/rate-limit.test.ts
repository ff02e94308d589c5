import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../db/client';
import { createTestDatabase } from '../testing';
import {
  memoryRateLimiter,
  postgresRateLimiter,
  type RateLimiter,
  redisRateLimiter,
} from './rate-limit';

async function exercise(a: RateLimiter, b: RateLimiter, key: string) {
  // Two limiters standing for two instances: their counts add up.
  expect((await a.hit(key, 5, 60_000)).allowed).toBe(true);
  expect((await b.hit(key, 5, 60_000, 3)).remaining).toBe(1);
  expect((await a.hit(key, 5, 60_000)).allowed).toBe(true);
  const over = await b.hit(key, 5, 60_000);
  expect(over.allowed).toBe(false);
  expect(over.retryAfterMs).toBeGreaterThan(0);
  expect(over.retryAfterMs).toBeLessThanOrEqual(60_000);
  await a.reset(key);
  expect((await b.hit(key, 5, 60_000)).allowed).toBe(true);
}

describe('rate limiters', () => {
  it('memory: counts, costs, window, reset', async () => {
    const m = memoryRateLimiter();
    await exercise(m, m, 'k');
    await m.close();
  });

  describe('postgres (shared by every instance on one database)', () => {
    let db: DatabaseHandle;
    beforeAll(async () => {
      db = await createTestDatabase();
    });
    afterAll(() => db.close());

    it('two limiters on one database share their counts, also under concurrency', async () => {
      const a = postgresRateLimiter(db.db);
      const b = postgresRateLimiter(db.db);
      await exercise(a, b, 'shared');
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).hit('burst', 10, 60_000)),
      );
      expect(results.filter((r) => r.allowed)).toHaveLength(10);
      await a.close();
      await b.close();
    });
  });

  // Redis runs in CI; a machine without one skips nothing else.
  const redisUrl = 'redis://127.0.0.1:6379';
  it('redis: the same semantics when a server is reachable', async () => {
    const probe = new Redis(redisUrl, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    const up = await probe.connect().then(
      () => true,
      () => false,
    );
    if (!up) {
      probe.disconnect();
      return;
    }
    const prefix = `test:${crypto.randomUUID()}:`;
    const a = redisRateLimiter(probe, prefix);
    const b = redisRateLimiter(new Redis(redisUrl), prefix);
    await exercise(a, b, 'k');
    await a.close();
    await b.close();
  });
});
