import { eq, type SQL, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../../index';
import { createTestApi, failure, type TestApi } from '../../testing';
import type { AuditEvent } from './audit.dto';
import { recordAudit, verifyAudit } from './audit.service';
import { auditEvents } from './audit.table';

const PASSWORD = 'correct horse battery staple';
const IP = '203.0.113.7';

let t: TestApi;
let root: Session; // the first account: platform admin
const db = () => t.api.database.db;

beforeAll(async () => {
  t = await createTestApi();
  root = await t.signUp('Root');
});
afterAll(() => t.close());

async function log(filter: {
  projectId?: string;
  actorId?: string;
  action?: string;
}): Promise<AuditEvent[]> {
  const page = await t.caller(root.accessToken).audit.list({ limit: 100, ...filter });
  return page.items;
}

/** The messages along an error's cause chain (drivers and Drizzle wrap database errors). */
function messages(e: unknown): string {
  const out: string[] = [];
  for (let c: unknown = e; c; c = (c as { cause?: unknown }).cause) {
    out.push(String((c as { message?: unknown }).message));
  }
  return out.join(' | ');
}

async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return messages(e);
  }
  throw new Error('expected a rejection');
}

describe('recording', () => {
  it('records sign-ins, failures, refresh reuse, password change and logoutAll', async () => {
    const user = await t.signUp('Signer');
    const email = user.user.email;
    const anon = t.caller(null, IP);
    const session = await anon.auth.login({ email, password: PASSWORD });
    await failure(anon.auth.login({ email, password: 'not the password' }));
    const ghost = `ghost.${crypto.randomUUID()}@example.com`;
    await failure(anon.auth.login({ email: ghost, password: 'whatever it is' }));
    await anon.auth.refresh({ refreshToken: session.refreshToken });
    expect(await failure(anon.auth.refresh({ refreshToken: session.refreshToken }))).toEqual({
      code: 'UNAUTHORIZED',
      appCode: 'auth.refresh_reused',
    });
    const fresh = await anon.auth.login({ email, password: PASSWORD });
    const me = t.caller(fresh.accessToken, IP);
    await me.auth.changePassword({ currentPassword: PASSWORD, newPassword: 'another long one' });
    await me.auth.logoutAll();

    const mine = (await log({ actorId: user.user.id })).reverse();
    expect(mine.map((e) => e.action)).toEqual([
      'auth.registered',
      'auth.login_succeeded',
      'auth.login_failed',
      'auth.refresh_reused',
      'auth.login_succeeded',
      'auth.password_changed',
      'auth.logout_all',
    ]);
    for (const e of mine) expect(e.target).toBe(user.user.id);
    expect(mine.slice(1).every((e) => e.ip === IP)).toBe(true);
    expect(mine[2]?.metadata).toEqual({ email, reason: 'wrong_password' });
    expect(mine[3]?.metadata).toMatchObject({ sessionsEnded: 1 });

    const unknown = (await log({ action: 'auth.login_failed' })).find(
      (e) => e.metadata.email === ghost,
    );
    expect(unknown).toMatchObject({ actorId: null, target: null, ip: IP });
    expect(unknown?.metadata.reason).toBe('unknown_email');

    // No secret reaches the log.
    const text = JSON.stringify(await log({}));
    for (const secret of [PASSWORD, 'not the password', 'another long one', session.refreshToken]) {
      expect(text).not.toContain(secret);
    }
  });

  it('records role changes and (de)activation by platform admins', async () => {
    const target = await t.signUp('Target');
    const admin = t.caller(root.accessToken, IP);
    await admin.users.setRole({ userId: target.user.id, role: 'admin' });
    await admin.users.setActive({ userId: target.user.id, active: false });
    await admin.users.setActive({ userId: target.user.id, active: true });
    const events = (await log({ actorId: root.user.id }))
      .filter((e) => e.target === target.user.id)
      .reverse();
    expect(events.map((e) => [e.action, e.metadata])).toEqual([
      ['users.role_changed', { from: 'user', to: 'admin' }],
      ['users.deactivated', { sessionsEnded: 1 }],
      ['users.reactivated', {}],
    ]);
    expect(events.every((e) => e.ip === IP && e.projectId === null)).toBe(true);
  });

  it('records project and membership changes; the history outlives the project', async () => {
    const owner = await t.signUp('Owner');
    const other = await t.signUp('Other');
    const c = t.caller(owner.accessToken, IP);
    const { id: projectId } = await c.projects.create({ name: 'Audited' });
    await c.projects.update({ projectId, name: 'Audited 2', description: 'long text' });
    await c.projects.members.add({ projectId, email: other.user.email, role: 'viewer' });
    await c.projects.members.updateRole({ projectId, userId: other.user.id, role: 'admin' });
    await c.projects.members.remove({ projectId, userId: other.user.id });
    await c.projects.delete({ projectId });

    const events = (await log({ projectId })).reverse();
    expect(events.map((e) => [e.action, e.target, e.metadata])).toEqual([
      ['projects.created', projectId, { name: 'Audited' }],
      ['projects.updated', projectId, { fields: ['name', 'description'], name: 'Audited 2' }],
      ['projects.member_added', other.user.id, { role: 'viewer' }],
      ['projects.member_role_changed', other.user.id, { from: 'viewer', to: 'admin' }],
      ['projects.member_removed', other.user.id, { role: 'admin' }],
      ['projects.deleted', projectId, { name: 'Audited 2' }],
    ]);
    for (const e of events) {
      expect(e).toMatchObject({ actorId: owner.user.id, projectId, ip: IP });
      expect(Date.parse(e.at)).not.toBeNaN();
    }
  });

  it('records nothing for a change that rolls back', async () => {
    const owner = await t.signUp('Refused');
    const c = t.caller(owner.accessToken);
    const { id: projectId } = await c.projects.create({ name: 'P' });
    expect(
      await failure(c.projects.members.add({ projectId, email: owner.user.email, role: 'admin' })),
    ).toEqual({ code: 'CONFLICT', appCode: 'projects.member_exists' });
    await expect(
      db().transaction(async (tx) => {
        await recordAudit({ db: tx, actorId: owner.user.id, action: 'test.rolled_back' });
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect((await log({ actorId: owner.user.id })).map((e) => e.action)).toEqual([
      'projects.created',
      'auth.registered',
    ]);
    expect(await verifyAudit({ db: db() })).toMatchObject({ ok: true });
  });

  it('refuses metadata keys that name secrets, and undotted actions', async () => {
    const base = { db: db(), actorId: null };
    await expect(
      recordAudit({ ...base, action: 'test.secret', metadata: { nested: { password: 'x' } } }),
    ).rejects.toThrow(/secrets/);
    await expect(recordAudit({ ...base, action: 'NotDotted' })).rejects.toThrow(/dotted/);
  });
});

describe('audit.list', () => {
  let owner: Session;
  let admin: Session;
  let member: Session;
  let outsider: Session;
  let projectId: string;

  beforeAll(async () => {
    owner = await t.signUp('List Owner');
    admin = await t.signUp('List Admin');
    member = await t.signUp('List Member');
    outsider = await t.signUp('List Outsider');
    const c = t.caller(owner.accessToken);
    projectId = (await c.projects.create({ name: 'Listed' })).id;
    await c.projects.members.add({ projectId, email: admin.user.email, role: 'admin' });
    await c.projects.members.add({ projectId, email: member.user.email, role: 'member' });
    for (let i = 0; i < 5; i++) await c.projects.update({ projectId, name: `Listed ${i}` });
  });

  it('pages newest first by id, with filters', async () => {
    const c = t.caller(admin.accessToken);
    const seen: AuditEvent[] = [];
    let cursor: string | undefined;
    do {
      const page = await c.audit.list({ projectId, limit: 3, ...(cursor ? { cursor } : {}) });
      expect(page.items.length).toBeLessThanOrEqual(3);
      seen.push(...page.items);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toHaveLength(8);
    const ids = seen.map((e) => BigInt(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0)));
    expect(new Set(ids).size).toBe(ids.length);
    expect(seen.every((e) => e.projectId === projectId)).toBe(true);

    const updates = await c.audit.list({ projectId, action: 'projects.updated' });
    expect(updates.items.map((e) => e.metadata.name)).toEqual(
      [4, 3, 2, 1, 0].map((i) => `Listed ${i}`),
    );
    const byAdmin = await c.audit.list({ projectId, actorId: admin.user.id });
    expect(byAdmin.items).toEqual([]);
    const byOwner = await c.audit.list({ projectId, actorId: owner.user.id, limit: 100 });
    expect(byOwner.items).toHaveLength(8);

    // `from` is inclusive and `to` exclusive.
    const middle = seen[3];
    if (!middle) throw new Error('no middle event');
    const from = await c.audit.list({ projectId, from: middle.at, limit: 100 });
    expect(from.items.map((e) => e.id)).toContain(middle.id);
    expect(from.items.every((e) => e.at >= middle.at)).toBe(true);
    const to = await c.audit.list({ projectId, to: middle.at, limit: 100 });
    expect(to.items.every((e) => e.at < middle.at)).toBe(true);
    expect(from.items.length + to.items.length).toBe(8);
  });

  it('lists with no input at all, as with {}, for platform admins only', async () => {
    const c = t.caller(root.accessToken);
    const page = await c.audit.list();
    expect(page.items.map((e) => e.projectId)).toContain(projectId);
    expect(page).toEqual(await c.audit.list({}));
    expect(await failure(t.caller(owner.accessToken).audit.list())).toEqual({
      code: 'FORBIDDEN',
      appCode: 'auth.admin_required',
    });
  });

  it('rejects a forged cursor and bad input', async () => {
    const c = t.caller(root.accessToken);
    for (const cursor of ['garbage', '-1', '0', '1.5', '99999999999999999999']) {
      expect(await failure(c.audit.list({ cursor }))).toEqual({
        code: 'BAD_REQUEST',
        appCode: 'pagination.invalid_cursor',
      });
    }
    expect((await failure(c.audit.list({ limit: 101 }))).code).toBe('BAD_REQUEST');
    expect((await failure(c.audit.list({ from: 'yesterday' }))).code).toBe('BAD_REQUEST');
  });

  it('a project log is for its admins; the whole log for platform admins', async () => {
    expect((await t.caller(owner.accessToken).audit.list({ projectId })).items.length).toBe(8);
    expect(await failure(t.caller(member.accessToken).audit.list({ projectId }))).toEqual({
      code: 'FORBIDDEN',
      appCode: 'projects.role_insufficient',
    });
    expect(await failure(t.caller(outsider.accessToken).audit.list({ projectId }))).toEqual({
      code: 'NOT_FOUND',
      appCode: 'projects.not_found',
    });
    expect(await failure(t.caller(admin.accessToken).audit.list({}))).toEqual({
      code: 'FORBIDDEN',
      appCode: 'auth.admin_required',
    });
    expect(await failure(t.caller(admin.accessToken).audit.verify())).toEqual({
      code: 'FORBIDDEN',
      appCode: 'auth.admin_required',
    });
    expect((await failure(t.caller().audit.list({}))).code).toBe('UNAUTHORIZED');
    const all = await t.caller(root.accessToken).audit.list({});
    expect(all.items.length).toBe(20);
    expect((await t.caller(root.accessToken).audit.list({ projectId })).items.length).toBe(8);
  });
});

describe('tamper evidence', () => {
  it('verify walks an intact chain, page by page', async () => {
    const [{ n } = { n: 0 }] = await db()
      .select({ n: sql<number>`count(*)::int` })
      .from(auditEvents);
    expect(n).toBeGreaterThan(20);
    expect(await t.caller(root.accessToken).audit.verify()).toEqual({
      ok: true,
      checked: n,
      firstBrokenId: null,
    });
    expect(await verifyAudit({ db: db(), pageSize: 7 })).toEqual({
      ok: true,
      checked: n,
      firstBrokenId: null,
    });
  });

  it('UPDATE, DELETE and TRUNCATE through the app’s database fail', async () => {
    const [row] = await db().select().from(auditEvents).limit(1);
    if (!row) throw new Error('no audit row');
    const refused = /audit_events is append-only: (UPDATE|DELETE|TRUNCATE) is not allowed/;
    expect(
      await rejection(
        db().update(auditEvents).set({ ip: '10.0.0.1' }).where(eq(auditEvents.id, row.id)),
      ),
    ).toMatch(refused);
    expect(await rejection(db().delete(auditEvents).where(eq(auditEvents.id, row.id)))).toMatch(
      refused,
    );
    expect(await rejection(db().execute(sql`delete from audit_events`))).toMatch(refused);
    expect(await rejection(db().execute(sql`truncate audit_events`))).toMatch(refused);
    const [after] = await db().select().from(auditEvents).where(eq(auditEvents.id, row.id));
    expect(after).toEqual(row);
  });

  it('finds a row changed or removed behind the trigger’s back', async () => {
    const rows = await db().select().from(auditEvents).orderBy(auditEvents.id);
    const victim = rows[5];
    const next = rows[6];
    if (!victim || !next) throw new Error('not enough rows');
    const behindTheTrigger = async (statement: SQL) => {
      await db().execute(sql`alter table audit_events disable trigger audit_events_append_only`);
      try {
        await db().execute(statement);
      } finally {
        await db().execute(sql`alter table audit_events enable trigger audit_events_append_only`);
      }
    };
    const verify = () => t.caller(root.accessToken).audit.verify();

    await behindTheTrigger(
      sql`update audit_events set metadata = '{"forged":true}' where id = ${victim.id}`,
    );
    expect(await verify()).toEqual({ ok: false, checked: 6, firstBrokenId: String(victim.id) });
    expect(await verifyAudit({ db: db(), pageSize: 2 })).toMatchObject({
      firstBrokenId: String(victim.id),
    });

    // Restored exactly, the chain is whole again.
    await behindTheTrigger(
      sql`update audit_events set metadata = ${JSON.stringify(victim.metadata)}::jsonb where id = ${victim.id}`,
    );
    expect((await verify()).ok).toBe(true);

    // A removed row breaks the link of the row after it.
    await behindTheTrigger(sql`delete from audit_events where id = ${victim.id}`);
    expect(await verify()).toMatchObject({ ok: false, firstBrokenId: String(next.id) });
    await db().insert(auditEvents).values(victim);
    expect((await verify()).ok).toBe(true);

    // The trigger is back on.
    expect(await rejection(db().execute(sql`delete from audit_events`))).toMatch(/append-only/);
  });

  it('concurrent appends keep one valid chain', async () => {
    const before = await verifyAudit({ db: db() });
    const appended = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        recordAudit({
          db: db(),
          actorId: root.user.id,
          action: 'test.concurrent',
          target: String(i),
          metadata: { i, nested: { b: [1, 'two', null], a: true } },
        }),
      ),
    );
    expect(new Set(appended.map((e) => e.id)).size).toBe(30);
    expect(await verifyAudit({ db: db(), pageSize: 10 })).toEqual({
      ok: true,
      checked: before.checked + 30,
      firstBrokenId: null,
    });
  });
});
