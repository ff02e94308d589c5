import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './harness';
import { type Cluster, multiInstanceEnabled, PASSWORD, startCluster } from './instances';

/**
 * The fast authorization path over HTTP, as clients meet it: a project-scoped call reads the
 * session, the membership and the project in one query, per call. Nothing about sessions or
 * memberships is cached, so the bound on revocation is what it was: the first request after
 * the change commits is refused, on this instance and on any other sharing the database.
 */
interface Session {
  accessToken: string;
  refreshToken: string;
  user: { id: string; email: string };
}

interface Answer {
  status: number;
  body: unknown;
}

async function post(origin: string, path: string, input: unknown, token?: string) {
  const res = await fetch(`${origin}/trpc/${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify(input),
  });
  return { status: res.status, body: (await res.json()) as unknown };
}

async function get(origin: string, path: string, token: string, input?: unknown) {
  const query = input === undefined ? '' : `?input=${encodeURIComponent(JSON.stringify(input))}`;
  const res = await fetch(`${origin}/trpc/${path}${query}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: res.status, body: (await res.json()) as unknown };
}

function data<T>(answer: Answer): T {
  const body = answer.body as { result?: { data: T } };
  if (answer.status !== 200 || !body.result) throw new Error(JSON.stringify(answer));
  return body.result.data;
}

const appCode = (answer: Answer) =>
  (answer.body as { error?: { data?: { appCode?: string } } }).error?.data?.appCode;

async function register(origin: string, name: string): Promise<Session> {
  return data<Session>(
    await post(origin, 'auth.register', {
      email: `${name}.${randomUUID().slice(0, 8)}@example.com`,
      password: PASSWORD,
      name,
    }),
  );
}

/** An owner's project with `member` in it at `role`, made through `origin`. */
async function sharedProject(origin: string, owner: Session, member: Session, role: string) {
  const project = data<{ id: string }>(
    await post(origin, 'projects.create', { name: 'Shared' }, owner.accessToken),
  );
  data(
    await post(
      origin,
      'projects.members.add',
      { projectId: project.id, email: member.user.email, role },
      owner.accessToken,
    ),
  );
  return project.id;
}

describe('one server', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.close());

  it('a batch: each project call is authorized for its own project', async () => {
    const { origin } = server;
    const owner = await register(origin, 'owner');
    const member = await register(origin, 'member');
    const mine = await sharedProject(origin, owner, member, 'viewer');
    const theirs = data<{ id: string }>(
      await post(origin, 'projects.create', { name: 'Theirs' }, owner.accessToken),
    ).id;
    const input = encodeURIComponent(
      JSON.stringify({ 0: { projectId: mine }, 1: { projectId: theirs } }),
    );
    const res = await fetch(
      `${origin}/trpc/projects.get,projects.get,users.me?batch=1&input=${input}`,
      { headers: { authorization: `Bearer ${member.accessToken}` } },
    );
    const body = (await res.json()) as [
      { result: { data: { id: string; myRole: string } } },
      { error: { data: { appCode: string; httpStatus: number } } },
      { result: { data: { id: string } } },
    ];
    expect(res.status).toBe(207);
    expect(body[0].result.data).toMatchObject({ id: mine, myRole: 'viewer' });
    expect(body[1].error.data).toMatchObject({ appCode: 'projects.not_found', httpStatus: 404 });
    expect(body[2].result.data.id).toBe(member.user.id);
  });

  it('signed out: every call of a batch is refused', async () => {
    const { origin } = server;
    const owner = await register(origin, 'owner');
    const member = await register(origin, 'member');
    const projectId = await sharedProject(origin, owner, member, 'viewer');
    expect((await get(origin, 'projects.get', member.accessToken, { projectId })).status).toBe(200);
    data(await post(origin, 'auth.logoutAll', {}, member.accessToken));
    const input = encodeURIComponent(JSON.stringify({ 0: { projectId } }));
    const res = await fetch(`${origin}/trpc/projects.get,users.me?batch=1&input=${input}`, {
      headers: { authorization: `Bearer ${member.accessToken}` },
    });
    const body = (await res.json()) as { error: { data: { appCode: string } } }[];
    expect(res.status).toBe(401);
    expect(body.map((b) => b.error.data.appCode)).toEqual([
      'auth.unauthenticated',
      'auth.unauthenticated',
    ]);
  });
});

/**
 * Two server processes on one PostgreSQL: a change made through A stops the very next request
 * on B, with no wait (the check reads the database on every call, as before).
 */
describe.runIf(multiInstanceEnabled)('revocation across two server processes', () => {
  let cluster: Cluster;
  let admin: Session;
  beforeAll(async () => {
    cluster = await startCluster();
    // The first account of the database is the platform admin (it deactivates one below).
    admin = await register(cluster.a.origin, 'admin');
  }, 120_000);
  afterAll(() => cluster?.close());

  it('membership: role lowered, member removed, project deleted through A; B refuses at once', async () => {
    const a = cluster.a.origin;
    const b = cluster.b.origin;
    const owner = await register(a, 'owner');
    const member = await register(a, 'member');
    const projectId = await sharedProject(a, owner, member, 'admin');
    const update = () =>
      post(b, 'projects.update', { projectId, name: 'Renamed' }, member.accessToken);
    expect((await update()).status).toBe(200);
    expect(
      data<{ myRole: string }>(await get(b, 'projects.get', member.accessToken, { projectId }))
        .myRole,
    ).toBe('admin');

    data(
      await post(
        a,
        'projects.members.updateRole',
        { projectId, userId: member.user.id, role: 'viewer' },
        owner.accessToken,
      ),
    );
    const lowered = await update();
    expect([lowered.status, appCode(lowered)]).toEqual([403, 'projects.role_insufficient']);

    data(
      await post(
        a,
        'projects.members.remove',
        { projectId, userId: member.user.id },
        owner.accessToken,
      ),
    );
    const removed = await get(b, 'projects.get', member.accessToken, { projectId });
    expect([removed.status, appCode(removed)]).toEqual([404, 'projects.not_found']);

    expect((await get(b, 'projects.get', owner.accessToken, { projectId })).status).toBe(200);
    data(await post(a, 'projects.delete', { projectId }, owner.accessToken));
    const deleted = await get(b, 'projects.get', owner.accessToken, { projectId });
    expect([deleted.status, appCode(deleted)]).toEqual([404, 'projects.not_found']);
  });

  it('session: signed out, password changed, deactivated, refresh reused through A; B refuses at once', async () => {
    const a = cluster.a.origin;
    const b = cluster.b.origin;
    const works = async (token: string, projectId: string) => {
      expect((await get(b, 'users.me', token)).status).toBe(200);
      expect((await get(b, 'projects.get', token, { projectId })).status).toBe(200);
    };
    const refused = async (token: string, projectId: string) => {
      for (const answer of [
        await get(b, 'users.me', token),
        await get(b, 'projects.get', token, { projectId }),
      ]) {
        expect([answer.status, appCode(answer)]).toEqual([401, 'auth.unauthenticated']);
      }
    };
    const login = async (email: string, password = PASSWORD) =>
      data<Session>(await post(a, 'auth.login', { email, password }));

    const user = await register(a, 'user');
    const projectId = await sharedProject(a, admin, user, 'viewer');

    // Sign out (this session only).
    const first = await login(user.user.email);
    await works(first.accessToken, projectId);
    data(await post(a, 'auth.logout', { refreshToken: first.refreshToken }));
    await refused(first.accessToken, projectId);

    // A refresh token presented twice ends its session.
    const second = await login(user.user.email);
    await works(second.accessToken, projectId);
    data(await post(a, 'auth.refresh', { refreshToken: second.refreshToken }));
    const reused = await post(a, 'auth.refresh', { refreshToken: second.refreshToken });
    expect(appCode(reused)).toBe('auth.refresh_reused');
    await refused(second.accessToken, projectId);

    // Password changed: the other sessions end, the one that changed it goes on.
    const other = await login(user.user.email);
    await works(other.accessToken, projectId);
    data(
      await post(
        a,
        'auth.changePassword',
        { currentPassword: PASSWORD, newPassword: 'a different long password' },
        user.accessToken,
      ),
    );
    await refused(other.accessToken, projectId);
    await works(user.accessToken, projectId);

    // Deactivated by an admin.
    data(
      await post(a, 'users.setActive', { userId: user.user.id, active: false }, admin.accessToken),
    );
    await refused(user.accessToken, projectId);
  });
});
