import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from './index';
import { signAccessToken, verifyAccessToken } from './modules/auth/tokens';
import { createTestApi, failure, type TestApi } from './testing';

/**
 * Invariants of the fast authorization path: a project-scoped call reads the session, the
 * caller's membership and the project in one query, and verified access tokens are remembered
 * in process. Neither may change who is let in: a session that ends, a membership that changes
 * or a project that goes stops the very next call (nothing about either is cached), and a
 * token is refused once expired even though it was verified before.
 */
let t: TestApi;
let owner: Session;
beforeAll(async () => {
  t = await createTestApi();
  owner = await t.signUp('Owner');
});
afterAll(() => t.close());

const unauthorized = { code: 'UNAUTHORIZED', appCode: 'auth.unauthenticated' };
const notFound = { code: 'NOT_FOUND', appCode: 'projects.not_found' };
const forbidden = { code: 'FORBIDDEN', appCode: 'projects.role_insufficient' };

async function projectWith(role: 'viewer' | 'member' | 'admin') {
  const member = await t.signUp('Member');
  const project = await t.caller(owner.accessToken).projects.create({ name: 'Fast' });
  await t
    .caller(owner.accessToken)
    .projects.members.add({ projectId: project.id, email: member.user.email, role });
  return { member, projectId: project.id };
}

/** Both authenticated paths work for this token (and so its verification is remembered). */
async function bothPathsWork(token: string, projectId: string) {
  expect((await t.caller(token).users.me()).id).toBeTruthy();
  expect((await t.caller(token).projects.get({ projectId })).id).toBe(projectId);
}

describe('project calls in one query', () => {
  it('answers as the three reads did: the project and my role; strangers learn nothing', async () => {
    const { member, projectId } = await projectWith('member');
    const got = await t.caller(member.accessToken).projects.get({ projectId });
    expect(got).toMatchObject({ id: projectId, name: 'Fast', description: null, myRole: 'member' });
    expect(typeof got.createdAt).toBe('string');
    const asOwner = await t.caller(owner.accessToken).projects.get({ projectId });
    expect(got).toEqual({ ...asOwner, myRole: 'member' });

    const outsider = await t.signUp('Outsider');
    expect(await failure(t.caller(outsider.accessToken).projects.get({ projectId }))).toEqual(
      notFound,
    );
    // A project that does not exist answers exactly as one the caller is not in.
    const missing = crypto.randomUUID();
    expect(
      await failure(t.caller(member.accessToken).projects.get({ projectId: missing })),
    ).toEqual(notFound);
    // Below the role: FORBIDDEN, after the membership is known.
    expect(
      await failure(t.caller(member.accessToken).projects.update({ projectId, name: 'No' })),
    ).toEqual(forbidden);
  });

  it('keeps the order of checks: sign-in, the projectId, the membership, the rest', async () => {
    const { member, projectId } = await projectWith('admin');
    // Not signed in, input malformed: UNAUTHORIZED, as before (the input's rules stay hidden).
    expect(await failure(t.caller(null).projects.get({ projectId: 'nope' }))).toEqual(unauthorized);
    expect(await failure(t.caller('garbage').projects.get({ projectId }))).toEqual(unauthorized);
    // Signed in, projectId not a uuid: BAD_REQUEST, and no query was built from it.
    expect(
      (await failure(t.caller(member.accessToken).projects.get({ projectId: 'nope' }))).code,
    ).toBe('BAD_REQUEST');
    // Signed in, a stranger to the project: NOT_FOUND, even when the rest of the input (which
    // the procedure parses after the membership check) is invalid.
    const outsider = await t.signUp('Outsider');
    expect(
      await failure(t.caller(outsider.accessToken).projects.update({ projectId, name: '' })),
    ).toEqual(notFound);
    // A member below the role: FORBIDDEN, also before the rest of the input is parsed.
    await t
      .caller(owner.accessToken)
      .projects.members.updateRole({ projectId, userId: member.user.id, role: 'viewer' });
    expect(
      await failure(t.caller(member.accessToken).projects.update({ projectId, name: '' })),
    ).toEqual(forbidden);
  });

  it('a role lowered, a member removed, a project deleted: the next call sees it', async () => {
    const { member, projectId } = await projectWith('admin');
    const as = t.caller(member.accessToken);
    expect((await as.projects.update({ projectId, name: 'Renamed' })).name).toBe('Renamed');

    await t
      .caller(owner.accessToken)
      .projects.members.updateRole({ projectId, userId: member.user.id, role: 'viewer' });
    expect(await failure(as.projects.update({ projectId, name: 'Again' }))).toEqual(forbidden);
    expect((await as.projects.get({ projectId })).myRole).toBe('viewer');

    await t
      .caller(owner.accessToken)
      .projects.members.remove({ projectId, userId: member.user.id });
    expect(await failure(as.projects.get({ projectId }))).toEqual(notFound);
    expect(await failure(as.projects.members.list({ projectId }))).toEqual(notFound);

    await t.caller(owner.accessToken).projects.delete({ projectId });
    expect(await failure(t.caller(owner.accessToken).projects.get({ projectId }))).toEqual(
      notFound,
    );
  });

  it('a project API key still sees only its own project, at its own role', async () => {
    const { member, projectId } = await projectWith('admin');
    const key = await t
      .caller(member.accessToken)
      .apiKeys.create({ projectId, name: 'k', role: 'viewer' });
    const asKey = t.caller(key.secret);
    expect(await asKey.projects.get({ projectId })).toMatchObject({
      id: projectId,
      myRole: 'viewer',
    });
    const other = await t.caller(member.accessToken).projects.create({ name: 'Other' });
    expect(await failure(asKey.projects.get({ projectId: other.id }))).toEqual(notFound);
    expect(await failure(asKey.projects.update({ projectId, name: 'x' }))).toEqual(forbidden);
  });
});

const conversationNotFound = { code: 'NOT_FOUND', appCode: 'chat.conversation_not_found' };

describe('resource calls in one query (session, owner and membership)', () => {
  async function conversationIn(role: 'viewer' | 'member' | 'admin') {
    const { member, projectId } = await projectWith(role);
    const conversation = await t
      .caller(owner.accessToken)
      .chat.conversations.create({ projectId, title: 'Resource' });
    return { member, projectId, conversationId: conversation.id };
  }

  it('answers as the three reads did: members by role, strangers and missing ids alike', async () => {
    const { member, projectId, conversationId } = await conversationIn('viewer');
    const as = t.caller(member.accessToken);
    expect((await as.chat.conversations.get({ conversationId })).id).toBe(conversationId);
    expect(await failure(as.chat.conversations.update({ conversationId, title: 'No' }))).toEqual(
      forbidden,
    );
    const outsider = await t.signUp('Outsider');
    expect(
      await failure(t.caller(outsider.accessToken).chat.conversations.get({ conversationId })),
    ).toEqual(conversationNotFound);
    expect(
      await failure(as.chat.conversations.get({ conversationId: crypto.randomUUID() })),
    ).toEqual(conversationNotFound);
    // An id of another kind of resource (the project's own) is no conversation.
    expect(await failure(as.chat.conversations.get({ conversationId: projectId }))).toEqual(
      conversationNotFound,
    );
  });

  it('keeps the order of checks: sign-in, the id, the membership, the rest', async () => {
    const { member, conversationId } = await conversationIn('viewer');
    expect(
      await failure(t.caller(null).chat.conversations.get({ conversationId: 'nope' })),
    ).toEqual(unauthorized);
    expect(await failure(t.caller('garbage').chat.conversations.get({ conversationId }))).toEqual(
      unauthorized,
    );
    expect(
      (
        await failure(
          t.caller(member.accessToken).chat.conversations.get({ conversationId: 'nope' }),
        )
      ).code,
    ).toBe('BAD_REQUEST');
    const outsider = await t.signUp('Outsider');
    expect(
      await failure(
        t.caller(outsider.accessToken).chat.conversations.update({ conversationId, title: '' }),
      ),
    ).toEqual(conversationNotFound);
  });

  it('a role lowered, a member removed, the resource deleted: the next call sees it', async () => {
    const { member, projectId, conversationId } = await conversationIn('member');
    const as = t.caller(member.accessToken);
    expect((await as.chat.conversations.update({ conversationId, title: 'Mine' })).title).toBe(
      'Mine',
    );
    await t
      .caller(owner.accessToken)
      .projects.members.updateRole({ projectId, userId: member.user.id, role: 'viewer' });
    expect(await failure(as.chat.conversations.update({ conversationId, title: 'x' }))).toEqual(
      forbidden,
    );
    await t
      .caller(owner.accessToken)
      .projects.members.remove({ projectId, userId: member.user.id });
    expect(await failure(as.chat.conversations.get({ conversationId }))).toEqual(
      conversationNotFound,
    );
    await t.caller(owner.accessToken).chat.conversations.delete({ conversationId });
    expect(
      await failure(t.caller(owner.accessToken).chat.conversations.get({ conversationId })),
    ).toEqual(conversationNotFound);
  });

  it('a project API key reaches only its own project’s resources, at its own role', async () => {
    const { member, projectId, conversationId } = await conversationIn('admin');
    const key = await t
      .caller(member.accessToken)
      .apiKeys.create({ projectId, name: 'k', role: 'viewer' });
    const asKey = t.caller(key.secret);
    expect((await asKey.chat.conversations.get({ conversationId })).id).toBe(conversationId);
    expect(await failure(asKey.chat.conversations.update({ conversationId, title: 'x' }))).toEqual(
      forbidden,
    );
    const other = await conversationIn('admin');
    expect(
      await failure(asKey.chat.conversations.get({ conversationId: other.conversationId })),
    ).toEqual(conversationNotFound);
  });

  it('a session that ends stops the next resource call', async () => {
    const { member, conversationId } = await conversationIn('viewer');
    const as = t.caller(member.accessToken);
    expect((await as.chat.conversations.get({ conversationId })).id).toBe(conversationId);
    await t.caller().auth.logout({ refreshToken: member.refreshToken });
    expect(await failure(as.chat.conversations.get({ conversationId }))).toEqual(unauthorized);
  });
});

describe('a session that ends stops the next call, on both paths', () => {
  it('logout', async () => {
    const { member, projectId } = await projectWith('viewer');
    await bothPathsWork(member.accessToken, projectId);
    await t.caller().auth.logout({ refreshToken: member.refreshToken });
    expect(await failure(t.caller(member.accessToken).users.me())).toEqual(unauthorized);
    expect(await failure(t.caller(member.accessToken).projects.get({ projectId }))).toEqual(
      unauthorized,
    );
  });

  it('sign out everywhere', async () => {
    const { member, projectId } = await projectWith('viewer');
    await bothPathsWork(member.accessToken, projectId);
    await t.caller(member.accessToken).auth.logoutAll();
    expect(await failure(t.caller(member.accessToken).users.me())).toEqual(unauthorized);
    expect(await failure(t.caller(member.accessToken).projects.get({ projectId }))).toEqual(
      unauthorized,
    );
  });

  it('password changed: the other sessions end, the one that changed it goes on', async () => {
    const { member, projectId } = await projectWith('viewer');
    const other = await t
      .caller()
      .auth.login({ email: member.user.email, password: 'correct horse battery staple' });
    await bothPathsWork(other.accessToken, projectId);
    await t.caller(member.accessToken).auth.changePassword({
      currentPassword: 'correct horse battery staple',
      newPassword: 'another long password',
    });
    expect(await failure(t.caller(other.accessToken).projects.get({ projectId }))).toEqual(
      unauthorized,
    );
    expect(await failure(t.caller(other.accessToken).users.me())).toEqual(unauthorized);
    await bothPathsWork(member.accessToken, projectId);
  });

  it('account deactivated', async () => {
    const { member, projectId } = await projectWith('viewer');
    await bothPathsWork(member.accessToken, projectId);
    // The first account of the database is the platform admin.
    await t.caller(owner.accessToken).users.setActive({ userId: member.user.id, active: false });
    expect(await failure(t.caller(member.accessToken).projects.get({ projectId }))).toEqual(
      unauthorized,
    );
    expect(await failure(t.caller(member.accessToken).users.me())).toEqual(unauthorized);
  });

  it('a refresh token presented twice ends the session', async () => {
    const { member, projectId } = await projectWith('viewer');
    await bothPathsWork(member.accessToken, projectId);
    await t.caller().auth.refresh({ refreshToken: member.refreshToken });
    expect(
      (await failure(t.caller().auth.refresh({ refreshToken: member.refreshToken }))).appCode,
    ).toBe('auth.refresh_reused');
    expect(await failure(t.caller(member.accessToken).projects.get({ projectId }))).toEqual(
      unauthorized,
    );
    expect(await failure(t.caller(member.accessToken).users.me())).toEqual(unauthorized);
  });
});

describe('remembered token verifications', () => {
  const jwt = {
    secret: new TextEncoder().encode('another-test-secret-long-enough-for-hs256-0123'),
    issuer: 'smartspace',
    audience: 'smartspace-api',
    accessTtlSeconds: 1,
  };
  const claims = { userId: crypto.randomUUID(), sessionId: crypto.randomUUID() };

  it('refuses a token once it expires, though it was verified before', async () => {
    const { token } = await signAccessToken(jwt, claims);
    expect(await verifyAccessToken(jwt, token)).toMatchObject(claims);
    expect(await verifyAccessToken(jwt, token)).toMatchObject(claims);
    // exp is in whole seconds: at most 2 s from now the token is past it.
    await new Promise((r) => setTimeout(r, 2_100));
    expect(await verifyAccessToken(jwt, token)).toBeNull();
    expect(await verifyAccessToken(jwt, token)).toBeNull();
  });

  it('a token verified under one key, issuer or audience is not accepted under another', async () => {
    const long = { ...jwt, accessTtlSeconds: 60 };
    const { token } = await signAccessToken(long, claims);
    expect(await verifyAccessToken(long, token)).toMatchObject(claims);
    const otherKey = { ...long, secret: new TextEncoder().encode('x'.repeat(48)) };
    expect(await verifyAccessToken(otherKey, token)).toBeNull();
    expect(await verifyAccessToken({ ...long, issuer: 'someone-else' }, token)).toBeNull();
    expect(await verifyAccessToken({ ...long, audience: 'another-api' }, token)).toBeNull();
    // The same settings object changed in place (never done by the app) starts over too.
    const mutable = { ...long };
    expect(await verifyAccessToken(mutable, token)).toMatchObject(claims);
    mutable.issuer = 'someone-else';
    expect(await verifyAccessToken(mutable, token)).toBeNull();
  });

  it('a tampered token is refused, also after the genuine one was verified', async () => {
    const long = { ...jwt, accessTtlSeconds: 60 };
    const { token } = await signAccessToken(long, claims);
    expect(await verifyAccessToken(long, token)).toMatchObject(claims);
    const [h, p, s] = token.split('.') as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
    const forged = Buffer.from(JSON.stringify({ ...payload, sub: crypto.randomUUID() })).toString(
      'base64url',
    );
    expect(await verifyAccessToken(long, `${h}.${forged}.${s}`)).toBeNull();
    const flipped = s.slice(0, -2) + (s.endsWith('AA') ? 'BB' : 'AA');
    expect(await verifyAccessToken(long, `${h}.${p}.${flipped}`)).toBeNull();
  });
});
