import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../../index';
import { createTestApi, failure, type TestApi } from '../../testing';
import { auditEvents } from '../audit/audit.table';
import { apiRequests } from '../usage/usage.table';
import { createKeyUsageRecorder } from './api-keys.service';
import { apiKeys } from './api-keys.table';

const PRICES = JSON.stringify({ 'mock-echo': { input: '0', output: '1000' } });

let t: TestApi;
let owner: Session;
let admin: Session;
let member: Session;
let projectId: string;
let otherProjectId: string;

beforeAll(async () => {
  t = await createTestApi({ MODEL_PRICES: PRICES }, { mockChunkDelayMs: 0 });
  // The first account is a platform admin: keys it creates must not carry that role.
  owner = await t.signUp('Owner');
  admin = await t.signUp('Admin');
  member = await t.signUp('Member');
  const c = t.caller(owner.accessToken);
  projectId = (await c.projects.create({ name: 'Keys' })).id;
  await c.projects.members.add({ projectId, email: admin.user.email, role: 'admin' });
  await c.projects.members.add({ projectId, email: member.user.email, role: 'member' });
  // The owner is a member of this one too: a key must still not reach it.
  otherProjectId = (await c.projects.create({ name: 'Elsewhere' })).id;
});
afterAll(() => t.close());

const as = (token: string) => t.caller(token);

async function newKey(
  by: Session,
  role: 'viewer' | 'member' | 'admin' | 'owner' = 'member',
  extra: { expiresAt?: string } = {},
) {
  return as(by.accessToken).apiKeys.create({ projectId, name: `${role} key`, role, ...extra });
}

describe('API keys: creation and listing', () => {
  it('returns the secret once; only its hash and a display prefix are stored', async () => {
    const created = await newKey(admin, 'admin');
    expect(created.secret).toMatch(/^ssk_[A-Za-z0-9_-]{43}$/);
    expect(created.key).toMatchObject({
      projectId,
      name: 'admin key',
      role: 'admin',
      createdBy: admin.user.id,
      lastUsedAt: null,
      expiresAt: null,
      revokedAt: null,
    });
    expect(created.key.prefix).toBe(created.secret.slice(0, 12));

    const [row] = await t.api.deps.db.select().from(apiKeys).where(eq(apiKeys.id, created.key.id));
    expect(row?.secretHash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(row)).not.toContain(created.secret.slice(12));

    const listed = await as(owner.accessToken).apiKeys.list({ projectId });
    const mine = listed.find((k) => k.id === created.key.id);
    expect(mine).toEqual(created.key);
    expect(JSON.stringify(listed)).not.toContain(created.secret);
  });

  it("caps a key's role at its creator's, and lets only admins create keys", async () => {
    expect(await failure(newKey(admin, 'owner'))).toEqual({
      code: 'FORBIDDEN',
      appCode: 'apiKeys.role_exceeds_yours',
    });
    expect((await newKey(owner, 'owner')).key.role).toBe('owner');
    expect(await failure(newKey(member, 'viewer'))).toEqual({
      code: 'FORBIDDEN',
      appCode: 'projects.role_insufficient',
    });
    const bad = await failure(
      as(admin.accessToken).apiKeys.create({
        projectId,
        name: 'past',
        role: 'viewer',
        expiresAt: '2001-01-01T00:00:00Z',
      }),
    );
    expect(bad.code).toBe('BAD_REQUEST');
  });

  it('audits creation and revocation, without the secret', async () => {
    const created = await newKey(admin, 'viewer');
    await as(admin.accessToken).apiKeys.revoke({ keyId: created.key.id });
    const rows = await t.api.deps.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.target, created.key.id))
      .orderBy(auditEvents.id);
    expect(rows.map((r) => [r.action, r.actorId, r.projectId])).toEqual([
      ['api_keys.created', admin.user.id, projectId],
      ['api_keys.revoked', admin.user.id, projectId],
    ]);
    expect(rows[0]?.metadata).toMatchObject({ name: 'viewer key', role: 'viewer' });
    expect(JSON.stringify(rows)).not.toContain(created.secret);
  });
});

describe('API keys: what a key may do', () => {
  it('acts in its project with its role, never beyond it', async () => {
    const viewer = await newKey(admin, 'viewer');
    const project = await as(viewer.secret).projects.get({ projectId });
    expect(project.id).toBe(projectId);
    expect(await failure(as(viewer.secret).chat.conversations.create({ projectId }))).toEqual({
      code: 'FORBIDDEN',
      appCode: 'projects.role_insufficient',
    });
    const writer = await newKey(admin, 'member');
    const conv = await as(writer.secret).chat.conversations.create({ projectId, title: 'by key' });
    expect(conv.projectId).toBe(projectId);
  });

  it('is confined to its one project: any other answers NOT_FOUND like for a non-member', async () => {
    const key = await newKey(owner, 'admin');
    expect(await failure(as(key.secret).projects.get({ projectId: otherProjectId }))).toEqual({
      code: 'NOT_FOUND',
      appCode: 'projects.not_found',
    });
    const elsewhere = await as(owner.accessToken).chat.conversations.create({
      projectId: otherProjectId,
    });
    expect(
      await failure(as(key.secret).chat.messages.list({ conversationId: elsewhere.id })),
    ).toEqual({ code: 'NOT_FOUND', appCode: 'chat.conversation_not_found' });
  });

  it('cannot call account, platform-admin or key-management procedures', async () => {
    // Created by the platform admin, yet never an admin itself.
    const key = await newKey(owner, 'admin');
    const refused = { code: 'FORBIDDEN', appCode: 'auth.key_not_allowed' };
    expect(await failure(as(key.secret).users.me())).toEqual(refused);
    expect(await failure(as(key.secret).users.list({}))).toEqual(refused);
    expect(await failure(as(key.secret).auth.logoutAll())).toEqual(refused);
    expect(await failure(as(key.secret).projects.create({ name: 'x' }))).toEqual(refused);
    expect(
      await failure(as(key.secret).apiKeys.create({ projectId, name: 'child', role: 'viewer' })),
    ).toEqual(refused);
    expect(await failure(as(key.secret).apiKeys.revoke({ keyId: key.key.id }))).toEqual(refused);
    // Listing is a project read an admin key may do.
    expect((await as(key.secret).apiKeys.list({ projectId })).length).toBeGreaterThan(0);
  });

  it("acts with the lower of its role and its creator's, and dies with the creator's access", async () => {
    const temp = await t.signUp('Temp Admin');
    const c = as(owner.accessToken).projects.members;
    await c.add({ projectId, email: temp.user.email, role: 'admin' });
    const key = await newKey(temp, 'admin');
    await as(key.secret).policies.update({ projectId, maxOutputTokens: 4096 });
    await c.updateRole({ projectId, userId: temp.user.id, role: 'viewer' });
    expect(
      await failure(as(key.secret).policies.update({ projectId, maxOutputTokens: 4096 })),
    ).toEqual({ code: 'FORBIDDEN', appCode: 'projects.role_insufficient' });
    await as(key.secret).projects.get({ projectId });
    await c.remove({ projectId, userId: temp.user.id });
    expect(await failure(as(key.secret).projects.get({ projectId }))).toEqual({
      code: 'UNAUTHORIZED',
      appCode: 'auth.key_revoked',
    });
  });
});

describe('API keys: refused keys', () => {
  it('answers revoked, expired and unknown keys with distinct codes', async () => {
    const revoked = await newKey(admin, 'viewer');
    await as(admin.accessToken).apiKeys.revoke({ keyId: revoked.key.id });
    expect(await failure(as(revoked.secret).projects.get({ projectId }))).toEqual({
      code: 'UNAUTHORIZED',
      appCode: 'auth.key_revoked',
    });

    const expiring = await newKey(admin, 'viewer', {
      expiresAt: new Date(Date.now() + 60_000).toISOString(),
    });
    await as(expiring.secret).projects.get({ projectId });
    await t.api.deps.db
      .update(apiKeys)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(apiKeys.id, expiring.key.id));
    expect(await failure(as(expiring.secret).projects.get({ projectId }))).toEqual({
      code: 'UNAUTHORIZED',
      appCode: 'auth.key_expired',
    });

    const unknown = `ssk_${'A'.repeat(43)}`;
    expect(await failure(as(unknown).projects.get({ projectId }))).toEqual({
      code: 'UNAUTHORIZED',
      appCode: 'auth.unauthenticated',
    });
    // A near miss of a real secret is just as unknown.
    const nearMiss = revoked.secret.slice(0, -1) + (revoked.secret.endsWith('A') ? 'B' : 'A');
    expect((await failure(as(nearMiss).projects.get({ projectId }))).appCode).toBe(
      'auth.unauthenticated',
    );
  });

  it('revokes once: a second or concurrent revoke conflicts; a stranger gets NOT_FOUND', async () => {
    const key = await newKey(admin, 'viewer');
    const outsider = await t.signUp('Outsider');
    expect(await failure(as(outsider.accessToken).apiKeys.revoke({ keyId: key.key.id }))).toEqual({
      code: 'NOT_FOUND',
      appCode: 'apiKeys.not_found',
    });
    expect(
      await failure(as(member.accessToken).apiKeys.revoke({ keyId: key.key.id })),
    ).toMatchObject({ code: 'FORBIDDEN' });
    const results = await Promise.allSettled([
      as(admin.accessToken).apiKeys.revoke({ keyId: key.key.id }),
      as(owner.accessToken).apiKeys.revoke({ keyId: key.key.id }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((r) => r.status === 'rejected');
    expect(await failure(Promise.reject(rejected?.reason))).toEqual({
      code: 'CONFLICT',
      appCode: 'apiKeys.already_revoked',
    });
  });

  it('lets the creator revoke their own key whatever their role now', async () => {
    const temp = await t.signUp('Leaving Admin');
    const c = as(owner.accessToken).projects.members;
    await c.add({ projectId, email: temp.user.email, role: 'admin' });
    const key = await newKey(temp, 'viewer');
    await c.updateRole({ projectId, userId: temp.user.id, role: 'viewer' });
    const revoked = await as(temp.accessToken).apiKeys.revoke({ keyId: key.key.id });
    expect(revoked.revokedAt).not.toBeNull();
  });
});

describe('API keys: last-used time', () => {
  it('is written at most once per interval per key', async () => {
    const key = await newKey(admin, 'viewer');
    let now = Date.parse('2030-01-01T00:00:00Z');
    const recorder = createKeyUsageRecorder({ db: t.api.deps.db, now: () => now });
    const lastUsed = async () => {
      const [row] = await t.api.deps.db
        .select({ at: apiKeys.lastUsedAt })
        .from(apiKeys)
        .where(eq(apiKeys.id, key.key.id));
      return row?.at?.toISOString() ?? null;
    };
    await recorder.touch(key.key.id);
    expect(await lastUsed()).toBe('2030-01-01T00:00:00.000Z');
    now += 30_000;
    await recorder.touch(key.key.id);
    expect(await lastUsed()).toBe('2030-01-01T00:00:00.000Z');
    // Another process that touched it within the interval skips the write too.
    const other = createKeyUsageRecorder({ db: t.api.deps.db, now: () => now });
    await other.touch(key.key.id);
    expect(await lastUsed()).toBe('2030-01-01T00:00:00.000Z');
    now += 31_000;
    await recorder.touch(key.key.id);
    expect(await lastUsed()).toBe('2030-01-01T00:01:01.000Z');
  });

  it('is recorded by calls made with the key, without a write per call', async () => {
    const key = await newKey(admin, 'viewer');
    const lastUsed = async () =>
      (await as(admin.accessToken).apiKeys.list({ projectId })).find((k) => k.id === key.key.id)
        ?.lastUsedAt ?? null;
    for (let i = 0; i < 5; i++) await as(key.secret).projects.get({ projectId });
    await expect.poll(lastUsed).not.toBeNull();
    const first = await lastUsed();
    for (let i = 0; i < 5; i++) await as(key.secret).projects.get({ projectId });
    await new Promise((r) => setTimeout(r, 100));
    expect(await lastUsed()).toBe(first);
  });
});

describe('API keys in the gateway', () => {
  it('records the key on usage rows and audit events of what it does', async () => {
    const key = await newKey(admin, 'admin');
    await as(key.secret).policies.update({ projectId, maxOutputTokens: 2 });
    const [event] = await t.api.deps.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.action, 'policies.updated'))
      .orderBy(sql`${auditEvents.id} desc`)
      .limit(1);
    expect(event).toMatchObject({ actorId: admin.user.id, actorKeyId: key.key.id });

    const conv = await as(key.secret).chat.conversations.create({ projectId });
    const sent = await as(key.secret).chat.send({ conversationId: conv.id, content: 'go' });
    await expect
      .poll(async () => {
        const [row] = await t.api.deps.db
          .select()
          .from(apiRequests)
          .where(eq(apiRequests.conversationId, conv.id));
        return row?.status;
      })
      .toBe('succeeded');
    const [row] = await t.api.deps.db
      .select()
      .from(apiRequests)
      .where(eq(apiRequests.conversationId, conv.id));
    expect(row).toMatchObject({ keyId: key.key.id, userId: admin.user.id });
    expect(sent.replyId).toBeTruthy();
  });

  it('enforces a budget set on the key, and only on that key', async () => {
    const key = await newKey(admin, 'member');
    await as(admin.accessToken).policies.update({ projectId, maxOutputTokens: 2 });
    await as(admin.accessToken).budgets.setLimit({
      projectId,
      scope: 'key',
      scopeId: key.key.id,
      period: 'day',
      amount: '0.002',
    });
    const call = (keyId: string | null) =>
      (async () => {
        for await (const _ of t.api.deps.gateway.stream({
          projectId,
          userId: admin.user.id,
          keyId,
          source: 'chat',
          model: 'mock-echo',
          messages: [{ role: 'user', content: 'go' }],
          maxOutputTokens: 1000,
        })) {
          // drain
        }
      })();
    await call(key.key.id);
    await expect(call(key.key.id)).rejects.toMatchObject({ code: 'budget.exceeded' });
    await call(null);
    await call(null);
  });
});
