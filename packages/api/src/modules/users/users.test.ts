import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../../index';
import { createTestApi, failure, type TestApi } from '../../testing';

let t: TestApi;
let admin: Session;
let user: Session;
beforeAll(async () => {
  t = await createTestApi({ ADMIN_EMAILS: 'boss@example.com' });
  admin = await t.signUp('Admin');
  user = await t.signUp('Plain');
});
afterAll(() => t.close());

describe('users', () => {
  it('me and update', async () => {
    expect((await t.caller(user.accessToken).users.me()).email).toBe(user.user.email);
    const updated = await t.caller(user.accessToken).users.update({ name: '  Renamed ' });
    expect(updated.name).toBe('Renamed');
    expect((await failure(t.caller(user.accessToken).users.update({ name: '' }))).code).toBe(
      'BAD_REQUEST',
    );
  });

  it('ADMIN_EMAILS promotes at registration', async () => {
    const boss = await t
      .caller()
      .auth.register({ email: 'Boss@Example.com', password: 'boss password', name: 'Boss' });
    expect(boss.user.role).toBe('admin');
  });

  it('admin-only procedures refuse plain users', async () => {
    const c = t.caller(user.accessToken);
    for (const call of [
      () => c.users.list({}),
      () => c.users.setRole({ userId: admin.user.id, role: 'user' }),
      () => c.users.setActive({ userId: admin.user.id, active: false }),
    ]) {
      expect(await failure(call())).toEqual({ code: 'FORBIDDEN', appCode: 'auth.admin_required' });
    }
  });

  it('lists with search (LIKE wildcards are literal) and pagination', async () => {
    const c = t.caller(admin.accessToken);
    const all = await c.users.list({ limit: 100 });
    expect(all.items.length).toBeGreaterThanOrEqual(3);
    expect(all.items.every((u) => typeof u.active === 'boolean')).toBe(true);
    const found = await c.users.list({ query: 'plain' });
    expect(found.items.map((u) => u.id)).toEqual([user.user.id]);
    expect((await c.users.list({ query: '%' })).items).toHaveLength(0);
    const first = await c.users.list({ limit: 1 });
    const second = await c.users.list({ limit: 1, cursor: first.nextCursor ?? '' });
    expect(second.items[0]?.id).not.toBe(first.items[0]?.id);
  });

  it('lists with no input at all, as with {}', async () => {
    const c = t.caller(admin.accessToken);
    const page = await c.users.list();
    expect(page.items.map((u) => u.id)).toContain(user.user.id);
    expect(page).toEqual(await c.users.list({}));
    expect(await failure(t.caller(user.accessToken).users.list())).toEqual({
      code: 'FORBIDDEN',
      appCode: 'auth.admin_required',
    });
  });

  it('update with no input changes nothing, as with {}', async () => {
    const c = t.caller(user.accessToken);
    const before = await c.users.me();
    expect(await c.users.update()).toEqual(before);
    expect(await c.users.update({})).toEqual(before);
  });

  it('setRole promotes; admins cannot change themselves', async () => {
    const c = t.caller(admin.accessToken);
    const other = await t.signUp('Promoted');
    expect((await c.users.setRole({ userId: other.user.id, role: 'admin' })).role).toBe('admin');
    expect((await t.caller(other.accessToken).users.list({})).items.length).toBeGreaterThan(0);
    expect(await failure(c.users.setRole({ userId: admin.user.id, role: 'user' }))).toEqual({
      code: 'BAD_REQUEST',
      appCode: 'users.cannot_change_self',
    });
    expect(await failure(c.users.setRole({ userId: crypto.randomUUID(), role: 'admin' }))).toEqual({
      code: 'NOT_FOUND',
      appCode: 'users.not_found',
    });
  });

  it('deactivation ends every session; reactivation allows signing in again', async () => {
    const c = t.caller(admin.accessToken);
    const victim = await t.signUp('Deactivated');
    const u = await c.users.setActive({ userId: victim.user.id, active: false });
    expect(u.id).toBe(victim.user.id);
    expect((await failure(t.caller(victim.accessToken).users.me())).code).toBe('UNAUTHORIZED');
    expect(
      (await failure(t.caller().auth.refresh({ refreshToken: victim.refreshToken }))).code,
    ).toBe('UNAUTHORIZED');
    await c.users.setActive({ userId: victim.user.id, active: true });
    const back = await t
      .caller()
      .auth.login({ email: victim.user.email, password: 'correct horse battery staple' });
    expect((await t.caller(back.accessToken).users.me()).id).toBe(victim.user.id);
  });
});
