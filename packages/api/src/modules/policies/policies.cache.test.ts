import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Api, createApi, createCaller } from '../../index';
import { createTestDatabase, type TestDatabase, testConfig } from '../../testing';
import { createPolicyCache, type PolicyCache } from './policies.cache';
import { policies } from './policies.table';

/**
 * The gateway reads policies from an in-process cache: a change must reach it at once on
 * the instance that made it and by NOTIFY on every other one (here: a second cache on its
 * own LISTEN, as another instance would have).
 */
describe('policy cache', () => {
  let database: TestDatabase;
  let api: Api;
  let other: PolicyCache;
  let caller: ReturnType<typeof createCaller>;

  beforeAll(async () => {
    database = await createTestDatabase();
    api = await createApi({ config: testConfig(), database, migrate: false });
    other = await createPolicyCache({ db: database.db, listen: database.listen.bind(database) });
    const anonymous = createCaller(
      api.createContext({ token: null, ip: '127.0.0.1', requestId: randomUUID() }),
    );
    const owner = await anonymous.auth.register({
      email: `policy-cache-${randomUUID().slice(0, 8)}@example.com`,
      password: 'correct horse battery staple',
      name: 'Owner',
    });
    caller = createCaller(
      api.createContext({ token: owner.accessToken, ip: '127.0.0.1', requestId: randomUUID() }),
    );
  });
  afterAll(async () => {
    await other?.close();
    await api?.close();
    await database?.close();
  });

  it('forgets a changed policy at once here and on NOTIFY elsewhere', async () => {
    const { id: projectId } = await caller.projects.create({ name: 'Cached' });
    const here = api.deps.gateway.policies;
    expect(await here.rules(projectId)).toMatchObject({ requestsPerMinute: null });
    expect(await other.rules(projectId)).toMatchObject({ requestsPerMinute: null });

    await caller.policies.update({ projectId, requestsPerMinute: 7 });
    expect(await here.rules(projectId)).toMatchObject({ requestsPerMinute: 7 });
    await expect
      .poll(async () => (await other.rules(projectId)).requestsPerMinute, { timeout: 5_000 })
      .toBe(7);
  });

  it('serves from memory until the entry expires', async () => {
    const { id: projectId } = await caller.projects.create({ name: 'Expiring' });
    const cache = await createPolicyCache({ db: database.db, ttlMs: 200 });
    try {
      expect(await cache.rules(projectId)).toMatchObject({ maxOutputTokens: null });
      // Written behind the cache's back (no NOTIFY): only expiry brings it in.
      await database.db.insert(policies).values({ projectId, maxOutputTokens: 5 });
      expect(await cache.rules(projectId)).toMatchObject({ maxOutputTokens: null });
      await new Promise((r) => setTimeout(r, 250));
      expect(await cache.rules(projectId)).toMatchObject({ maxOutputTokens: 5 });
      await database.db.delete(policies).where(eq(policies.projectId, projectId));
      cache.forget(projectId);
      expect(await cache.rules(projectId)).toMatchObject({ maxOutputTokens: null });
    } finally {
      await cache.close();
    }
  });

  it('keeps at most maxEntries projects, evicting the oldest', async () => {
    const cache = await createPolicyCache({ db: database.db, maxEntries: 2 });
    try {
      const { id: first } = await caller.projects.create({ name: 'Evicted' });
      expect(await cache.rules(first)).toMatchObject({ maxOutputTokens: null });
      await database.db.insert(policies).values({ projectId: first, maxOutputTokens: 9 });
      await cache.rules(randomUUID());
      await cache.rules(randomUUID());
      // Evicted, so read afresh (cached, it would still say null for 5 s).
      expect(await cache.rules(first)).toMatchObject({ maxOutputTokens: 9 });
    } finally {
      await cache.close();
    }
  });
});
