import { randomUUID } from 'node:crypto';
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../../index';
import { ACCESS_CHANNEL, type AccessChange } from '../../realtime/access';
import { createTestApi, failure, type TestApi } from '../../testing';

let t: TestApi;
let owner: Session;
let admin: Session;
let member: Session;
let viewer: Session;
let outsider: Session;
let projectId: string;

beforeAll(async () => {
  t = await createTestApi();
  owner = await t.signUp('Owner');
  admin = await t.signUp('Admin');
  member = await t.signUp('Member');
  viewer = await t.signUp('Viewer');
  outsider = await t.signUp('Outsider');
  projectId = (await t.caller(owner.accessToken).projects.create({ name: 'Alpha' })).id;
  const as = t.caller(owner.accessToken).projects.members;
  await as.add({ projectId, email: admin.user.email, role: 'admin' });
  await as.add({ projectId, email: member.user.email, role: 'member' });
  await as.add({ projectId, email: viewer.user.email, role: 'viewer' });
});
afterAll(() => t.close());

/** A GET through tRPC's own HTTP handler, as a plain HTTP client sends it: no `?input=`. */
async function getOverHttp(path: string, token: string) {
  const res = await fetchRequestHandler({
    endpoint: '/trpc',
    req: new Request(`http://localhost/trpc/${path}`),
    router: t.api.router,
    createContext: () => t.api.createContext({ token, ip: '127.0.0.1', requestId: randomUUID() }),
  });
  return { status: res.status, body: await res.json() };
}

describe('projects', () => {
  it('creates with the caller as owner; mass-assigned fields are ignored', async () => {
    const input = { name: '  Beta ', description: 'd', id: crypto.randomUUID(), role: 'x' };
    const p = await t.caller(member.accessToken).projects.create(input as never);
    expect(p).toMatchObject({ name: 'Beta', description: 'd' });
    expect(p.id).not.toBe(input.id);
    expect((await t.caller(member.accessToken).projects.get({ projectId: p.id })).myRole).toBe(
      'owner',
    );
  });

  it('lists only my projects, newest first, with cursor pagination', async () => {
    const caller = t.caller(viewer.accessToken);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await caller.projects.create({ name: `P${i}` })).id);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await caller.projects.list({ limit: 2, ...(cursor ? { cursor } : {}) });
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((p) => p.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen.slice(0, 5)).toEqual([...ids].reverse());
    expect(seen).toContain(projectId);
    expect(new Set(seen).size).toBe(seen.length);
    const outsiderList = await t.caller(outsider.accessToken).projects.list({});
    expect(outsiderList.items.map((p) => p.id)).not.toContain(projectId);
  });

  it('lists with no input at all, as with {}', async () => {
    const caller = t.caller(viewer.accessToken);
    const page = await caller.projects.list();
    expect(page.items.map((p) => p.id)).toContain(projectId);
    expect(page).toEqual(await caller.projects.list({}));
  });

  it('answers GET without ?input= for every list whose input is all optional', async () => {
    // The first account of the database is the platform admin.
    const token = owner.accessToken;
    const caller = t.caller(token);
    const expected = {
      'projects.list': await caller.projects.list({}),
      'users.list': await caller.users.list({}),
      'audit.list': await caller.audit.list({}),
      'payments.unmatched': await caller.payments.unmatched({}),
    };
    for (const [path, page] of Object.entries(expected)) {
      const res = await getOverHttp(path, token);
      expect(res.status, path).toBe(200);
      expect(res.body, path).toEqual({ result: { data: page } });
    }
    const plain = await getOverHttp('audit.list', viewer.accessToken);
    expect(plain.status).toBe(403);
    expect(plain.body.error.data.appCode).toBe('auth.admin_required');
  });

  it('rejects a forged cursor and a limit out of range', async () => {
    const caller = t.caller(owner.accessToken);
    expect(await failure(caller.projects.list({ cursor: 'garbage' }))).toEqual({
      code: 'BAD_REQUEST',
      appCode: 'pagination.invalid_cursor',
    });
    expect((await failure(caller.projects.list({ limit: 101 }))).code).toBe('BAD_REQUEST');
    expect((await failure(caller.projects.list({ limit: 0 }))).code).toBe('BAD_REQUEST');
  });

  it('enforces minimum roles: viewer reads, admin updates, owner deletes', async () => {
    expect((await t.caller(viewer.accessToken).projects.get({ projectId })).myRole).toBe('viewer');
    expect(
      await failure(t.caller(member.accessToken).projects.update({ projectId, name: 'X' })),
    ).toEqual({ code: 'FORBIDDEN', appCode: 'projects.role_insufficient' });
    const updated = await t
      .caller(admin.accessToken)
      .projects.update({ projectId, name: 'Alpha 2', description: null });
    expect(updated).toMatchObject({ name: 'Alpha 2', description: null });
    expect((await failure(t.caller(admin.accessToken).projects.delete({ projectId }))).code).toBe(
      'FORBIDDEN',
    );
  });

  it('answers NOT_FOUND for a missing project and for a project I am not in', async () => {
    const missing = await failure(
      t.caller(outsider.accessToken).projects.get({ projectId: crypto.randomUUID() }),
    );
    const foreign = await failure(t.caller(outsider.accessToken).projects.get({ projectId }));
    expect(missing).toEqual({ code: 'NOT_FOUND', appCode: 'projects.not_found' });
    expect(foreign).toEqual(missing);
  });

  it('deletes a project with its memberships', async () => {
    const p = await t.caller(outsider.accessToken).projects.create({ name: 'Doomed' });
    expect(await t.caller(outsider.accessToken).projects.delete({ projectId: p.id })).toEqual({
      ok: true,
    });
    expect(
      (await failure(t.caller(outsider.accessToken).projects.get({ projectId: p.id }))).code,
    ).toBe('NOT_FOUND');
  });
});

describe('members', () => {
  it('lists members with roles', async () => {
    const members = await t.caller(viewer.accessToken).projects.members.list({ projectId });
    expect(members.map((m) => [m.email, m.role])).toEqual([
      [owner.user.email, 'owner'],
      [admin.user.email, 'admin'],
      [member.user.email, 'member'],
      [viewer.user.email, 'viewer'],
    ]);
  });

  it('refuses unknown emails, duplicates, and owner grants by non-owners', async () => {
    const as = t.caller(admin.accessToken).projects.members;
    expect(
      await failure(as.add({ projectId, email: 'nobody@example.com', role: 'member' })),
    ).toEqual({ code: 'NOT_FOUND', appCode: 'users.not_found' });
    expect(await failure(as.add({ projectId, email: member.user.email, role: 'viewer' }))).toEqual({
      code: 'CONFLICT',
      appCode: 'projects.member_exists',
    });
    expect(await failure(as.add({ projectId, email: outsider.user.email, role: 'owner' }))).toEqual(
      { code: 'FORBIDDEN', appCode: 'projects.owner_required' },
    );
    expect(
      await failure(as.updateRole({ projectId, userId: owner.user.id, role: 'admin' })),
    ).toEqual({ code: 'FORBIDDEN', appCode: 'projects.owner_required' });
    expect(await failure(as.remove({ projectId, userId: owner.user.id }))).toEqual({
      code: 'FORBIDDEN',
      appCode: 'projects.owner_required',
    });
    expect(
      await failure(as.updateRole({ projectId, userId: crypto.randomUUID(), role: 'admin' })),
    ).toEqual({ code: 'NOT_FOUND', appCode: 'projects.member_not_found' });
  });

  it('always keeps one owner, even when two owners demote each other at once', async () => {
    const a = await t.signUp('Co-owner A');
    const b = await t.signUp('Co-owner B');
    const p = await t.caller(a.accessToken).projects.create({ name: 'Shared' });
    await t.caller(a.accessToken).projects.members.add({
      projectId: p.id,
      email: b.user.email,
      role: 'owner',
    });
    const results = await Promise.allSettled([
      t
        .caller(a.accessToken)
        .projects.members.updateRole({ projectId: p.id, userId: b.user.id, role: 'admin' }),
      t
        .caller(b.accessToken)
        .projects.members.updateRole({ projectId: p.id, userId: a.user.id, role: 'admin' }),
    ]);
    const members = await t.caller(a.accessToken).projects.members.list({ projectId: p.id });
    expect(members.filter((m) => m.role === 'owner')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'fulfilled').length).toBeGreaterThanOrEqual(1);
    const soleOwner = members.find((m) => m.role === 'owner');
    if (!soleOwner) throw new Error('no owner');
    const ownerSession = soleOwner.userId === a.user.id ? a : b;
    expect(
      await failure(
        t
          .caller(ownerSession.accessToken)
          .projects.members.remove({ projectId: p.id, userId: soleOwner.userId }),
      ),
    ).toEqual({ code: 'CONFLICT', appCode: 'projects.last_owner' });
  });

  it('lets an admin change and remove non-owners', async () => {
    const extra = await t.signUp('Extra');
    const as = t.caller(admin.accessToken).projects.members;
    await as.add({ projectId, email: extra.user.email, role: 'viewer' });
    expect((await as.updateRole({ projectId, userId: extra.user.id, role: 'member' })).role).toBe(
      'member',
    );
    expect(await as.remove({ projectId, userId: extra.user.id })).toEqual({ ok: true });
    expect((await failure(t.caller(extra.accessToken).projects.get({ projectId }))).code).toBe(
      'NOT_FOUND',
    );
  });
});

describe('access changes', () => {
  it('are announced on commit: a new role, a removal, a deletion; a refused change says nothing', async () => {
    const heard: AccessChange[] = [];
    const unlisten = await t.api.database.listen(ACCESS_CHANNEL, (payload) =>
      heard.push(JSON.parse(payload) as AccessChange),
    );
    try {
      const o = await t.signUp('Announcer');
      const x = await t.signUp('Announced');
      const { id } = await t.caller(o.accessToken).projects.create({ name: 'Announced' });
      const as = t.caller(o.accessToken).projects.members;
      await as.add({ projectId: id, email: x.user.email, role: 'admin' });
      await as.updateRole({ projectId: id, userId: x.user.id, role: 'viewer' });
      await failure(as.remove({ projectId: id, userId: o.user.id }));
      await as.remove({ projectId: id, userId: x.user.id });
      await t.caller(o.accessToken).projects.delete({ projectId: id });
      await expect
        .poll(() => heard.filter((h) => h.projectId === id))
        .toEqual([
          { projectId: id, userId: x.user.id, role: 'viewer' },
          { projectId: id, userId: x.user.id, role: null },
          { projectId: id, userId: null, role: null },
        ]);
    } finally {
      await unlisten();
    }
  });
});
