import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Api, createApi, createCaller } from '../../index';
import {
  createTestApi,
  createTestDatabase,
  failure,
  type TestApi,
  type TestDatabase,
  testConfig,
} from '../../testing';
import { createSessionCache, type SessionRow } from './session-cache';

const row = (over: Partial<SessionRow> = {}): SessionRow => ({
  id: 'u1',
  email: 'a@example.com',
  name: 'A',
  role: 'user',
  createdAt: new Date(0),
  expiresAt: Date.now() + 60_000,
  ...over,
});

describe('the session cache', () => {
  it('keeps a check for its user until the TTL or the session expires', async () => {
    const cache = await createSessionCache({ ttlMs: 200 });
    cache.set('s1', 'u1', row(), cache.generation);
    cache.set('s2', 'u1', row({ expiresAt: Date.now() - 1 }), cache.generation);
    expect(cache.get('s1', 'u1')?.email).toBe('a@example.com');
    // Another user's token naming this session is not served from it.
    expect(cache.get('s1', 'u2')).toBeNull();
    expect(cache.get('s2', 'u1')).toBeNull();
    await new Promise((r) => setTimeout(r, 220));
    expect(cache.get('s1', 'u1')).toBeNull();
    await cache.close();
  });

  it('a read that raced an invalidation is not put back', async () => {
    const cache = await createSessionCache({ ttlMs: 60_000 });
    const before = cache.generation;
    // The read started, then the session ended (or its user changed) before it came back.
    cache.forgetUser('u9');
    cache.set('s1', 'u1', row(), before);
    expect(cache.get('s1', 'u1')).toBeNull();
    cache.set('s1', 'u1', row(), cache.generation);
    expect(cache.get('s1', 'u1')).not.toBeNull();
    cache.forgetSession('s1');
    expect(cache.get('s1', 'u1')).toBeNull();
    await cache.close();
  });

  it('holds at most maxEntries (oldest out), and nothing with a TTL of 0', async () => {
    const cache = await createSessionCache({ ttlMs: 60_000, maxEntries: 2 });
    for (const s of ['s1', 's2', 's3']) cache.set(s, 'u1', row(), cache.generation);
    expect(cache.size).toBe(2);
    expect(cache.get('s1', 'u1')).toBeNull();
    expect(cache.get('s3', 'u1')).not.toBeNull();
    await cache.close();
    const off = await createSessionCache({ ttlMs: 0 });
    off.set('s1', 'u1', row(), off.generation);
    expect(off.get('s1', 'u1')).toBeNull();
    await off.close();
  });
});

describe('on one instance, what ends or changes a session shows on the next call', () => {
  let t: TestApi;
  beforeAll(async () => {
    t = await createTestApi();
  });
  afterAll(() => t.close());

  it('logout, demotion, deactivation and a new name', async () => {
    const admin = await t.signUp('Cache Admin');
    const user = await t.signUp('Cache User');
    // A caller is one request: each call below gets its own, so each checks its session.
    const a = () => t.caller(admin.accessToken);
    const u = () => t.caller(user.accessToken);
    await a().users.setRole({ userId: user.user.id, role: 'admin' });
    // Cached as an admin...
    await u().users.list({});
    await a().users.setRole({ userId: user.user.id, role: 'user' });
    // ...and a user again at once.
    expect(await failure(u().users.list({}))).toMatchObject({ code: 'FORBIDDEN' });
    await u().users.update({ name: 'Renamed' });
    expect((await u().users.me()).name).toBe('Renamed');
    // Calls addressed to a project use the kept check too (the membership is read each time).
    const { id: projectId } = await u().projects.create({ name: 'Kept' });
    expect((await u().projects.get({ projectId })).myRole).toBe('owner');
    await t.caller().auth.logout({ refreshToken: user.refreshToken });
    expect(await failure(u().users.me())).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(await failure(u().projects.get({ projectId }))).toMatchObject({
      code: 'UNAUTHORIZED',
    });

    const other = await t.signUp('Cache Other');
    await t.caller(other.accessToken).users.me();
    await a().users.setActive({ userId: other.user.id, active: false });
    expect(await failure(t.caller(other.accessToken).users.me())).toMatchObject({
      code: 'UNAUTHORIZED',
    });
  });
});

/** Two instances on one PostgreSQL database, each with its own pool and LISTEN connection. */
describe.runIf(Boolean(process.env.TEST_DATABASE_URL))('across instances', () => {
  let database: TestDatabase;
  let a: Api;
  let b: Api;
  const open = (env: Record<string, string> = {}) =>
    createApi({ config: testConfig({ DATABASE_URL: database.url ?? '', ...env }), migrate: false });
  const caller = (api: Api, token: string | null = null) =>
    createCaller(api.createContext({ token, ip: '127.0.0.1', requestId: randomUUID() }));
  const signUp = (name: string) =>
    caller(a).auth.register({
      email: `${name.toLowerCase()}.${randomUUID().slice(0, 8)}@example.com`,
      password: 'correct horse battery staple',
      name,
    });
  /** 'ok', or the tRPC code the call failed with. */
  const outcome = (call: Promise<unknown>) =>
    call.then(
      () => 'ok',
      (e: unknown) => (e as { code?: string }).code ?? 'error',
    );
  /** Polls until `check` passes; returns the milliseconds it took. */
  async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
    const start = Date.now();
    for (;;) {
      if (await check()) return Date.now() - start;
      if (Date.now() - start > ms) throw new Error(`not within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    a = await open();
    // A long TTL: what reaches it in time can only be the notifications.
    b = await open({ SESSION_CACHE_MS: '60000' });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await database?.close();
  });

  it('a session ended, a user demoted or renamed elsewhere: this instance within 1 s', async () => {
    const admin = await signUp('Admin');
    const user = await signUp('Member');
    // A caller is one request: each call gets its own, so each checks its session.
    const onA = () => caller(a, admin.accessToken);
    const userOnB = () => caller(b, user.accessToken);
    await onA().users.setRole({ userId: user.user.id, role: 'admin' });
    // Cached on B as an admin.
    expect(await outcome(userOnB().users.list({}))).toBe('ok');
    // The changes are made in SQL, not through an Api of this process (whose own forgetting
    // would reach B's cache too): only the triggers' notifications can tell B.
    const db = a.database.db;
    await db.execute(sql`update users set role = 'user' where id = ${user.user.id}`);
    await within(1000, async () => (await outcome(userOnB().users.list({}))) === 'FORBIDDEN');

    expect((await userOnB().users.me()).name).toBe('Member');
    await db.execute(sql`update users set name = 'Member Renamed' where id = ${user.user.id}`);
    await within(1000, async () => (await userOnB().users.me()).name === 'Member Renamed');

    // Project-addressed calls: the kept session, the membership read each time.
    const { id: projectId } = await caller(a, user.accessToken).projects.create({ name: 'B' });
    expect(await outcome(userOnB().projects.get({ projectId }))).toBe('ok');
    await db.execute(sql`delete from project_members where user_id = ${user.user.id}`);
    expect(await outcome(userOnB().projects.get({ projectId }))).toBe('NOT_FOUND');

    await db.execute(sql`update sessions set revoked_at = now() where user_id = ${user.user.id}`);
    await within(1000, async () => (await outcome(userOnB().users.me())) === 'UNAUTHORIZED');
    expect(await outcome(userOnB().projects.get({ projectId }))).toBe('UNAUTHORIZED');
  });

  it('a notification that never comes: the TTL bounds it', async () => {
    const short = await open({ SESSION_CACHE_MS: '400' });
    try {
      const user = await signUp('Lost');
      const onShort = () => caller(short, user.accessToken);
      await onShort().users.me();
      // The session ends without its NOTIFY (as if the listening connection were down).
      await a.database.db.execute(sql`alter table sessions disable trigger sessions_ended_notify`);
      try {
        await a.database.db.execute(
          sql`update sessions set revoked_at = now() where user_id = ${user.user.id}`,
        );
      } finally {
        await a.database.db.execute(sql`alter table sessions enable trigger sessions_ended_notify`);
      }
      // Still served from the cache, then refused once the check is older than the TTL.
      expect((await onShort().users.me()).id).toBe(user.user.id);
      const took = await within(
        1500,
        async () => (await outcome(onShort().users.me())) === 'UNAUTHORIZED',
      );
      expect(took).toBeLessThanOrEqual(600);
    } finally {
      await short.close();
    }
  });
});
