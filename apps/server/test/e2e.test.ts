import {
  type AppRouter,
  createClient,
  memorySessionStore,
  type Session,
  TRPCClientError,
} from '@smartspace/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './harness';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

const password = 'correct horse battery staple';

/** A fetch that counts the tRPC procedures it carries. */
function countingFetch() {
  const calls: string[] = [];
  const fetchImpl: typeof fetch = (input, init) => {
    const url = new URL(String(input instanceof Request ? input.url : input));
    calls.push(...decodeURIComponent(url.pathname.replace(/^\/trpc\//, '')).split(','));
    return fetch(input, init);
  };
  return { calls, fetchImpl };
}

describe('packages/client against the real server', () => {
  it('signs up, keeps the session, and works across modules', async () => {
    const client = createClient({ url: `${server.origin}/trpc` });
    const session = await client.auth.register.mutate({
      email: 'e2e@example.com',
      password,
      name: 'E2E',
    });
    expect(session.user.email).toBe('e2e@example.com');
    const me = await client.users.me.query();
    expect(me.id).toBe(session.user.id);
    const project = await client.projects.create.mutate({ name: 'From the client' });
    const page = await client.projects.list.query({});
    expect(page.items.map((p) => p.id)).toContain(project.id);
    expect(page.items[0]?.myRole).toBe('owner');
  });

  it('ten concurrent calls with an expired token trigger one refresh, then all succeed', async () => {
    const login = await createClient({ url: `${server.origin}/trpc` }).auth.register.mutate({
      email: 'refresh-e2e@example.com',
      password,
      name: 'Refresher',
    });
    const stale: Session = { ...login, accessToken: 'expired.or.garbage' };
    const store = memorySessionStore(stale);
    const { calls, fetchImpl } = countingFetch();
    const client = createClient({ url: `${server.origin}/trpc`, session: store, fetch: fetchImpl });
    const results = await Promise.all(Array.from({ length: 10 }, () => client.users.me.query()));
    expect(results.every((u) => u.id === login.user.id)).toBe(true);
    expect(calls.filter((c) => c === 'auth.refresh')).toHaveLength(1);
    const saved = await store.get();
    expect(saved?.refreshToken).not.toBe(login.refreshToken);
  });

  it('reports a clean UNAUTHORIZED and clears the session when refresh is impossible', async () => {
    let ended = 0;
    const client = createClient({
      url: `${server.origin}/trpc`,
      session: memorySessionStore(null),
      onSessionEnded: () => ended++,
    });
    const err = await client.users.me.query().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TRPCClientError);
    expect((err as TRPCClientError<AppRouter>).data).toMatchObject({
      code: 'UNAUTHORIZED',
      appCode: 'auth.unauthenticated',
      httpStatus: 401,
    });
    expect(ended).toBe(0);
  });

  it('batches calls into one request and carries appCode/fieldErrors in errors', async () => {
    const { calls, fetchImpl } = countingFetch();
    const client = createClient({ url: `${server.origin}/trpc`, fetch: fetchImpl });
    await client.auth.login.mutate({ email: 'e2e@example.com', password });
    const before = calls.length;
    const [a, b] = await Promise.all([
      client.users.me.query(),
      client.projects.list.query({ limit: 1 }),
    ]);
    expect(a.email).toBe('e2e@example.com');
    expect(b.items).toHaveLength(1);
    expect(calls.length - before).toBe(2);
    const bad = await client.projects.create.mutate({ name: '' }).catch((e: unknown) => e);
    expect((bad as TRPCClientError<AppRouter>).data).toMatchObject({
      code: 'BAD_REQUEST',
      appCode: 'request.invalid',
      fieldErrors: { name: [expect.any(String)] },
    });
  });

  it('signs out: logout forgets the session and the old refresh token is dead', async () => {
    const store = memorySessionStore();
    const client = createClient({ url: `${server.origin}/trpc`, session: store });
    const s = await client.auth.login.mutate({ email: 'e2e@example.com', password });
    await client.auth.logout.mutate({ refreshToken: s.refreshToken });
    expect(await store.get()).toBeNull();
    const again = await createClient({ url: `${server.origin}/trpc` })
      .auth.refresh.mutate({ refreshToken: s.refreshToken })
      .catch((e: unknown) => e);
    expect((again as TRPCClientError<AppRouter>).data?.code).toBe('UNAUTHORIZED');
  });
});
