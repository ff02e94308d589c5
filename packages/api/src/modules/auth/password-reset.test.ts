import { createHash, randomUUID } from 'node:crypto';
import { and, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mailOutbox } from '../../mail/mail.table';
import { createTestApi, failure, type TestApi } from '../../testing';
import { auditEvents } from '../audit/audit.table';
import { passwordResetTokens } from './password-reset.table';

let t: TestApi;
let adminToken: string;
beforeAll(async () => {
  t = await createTestApi({ LOGIN_ATTEMPTS_PER_15_MINUTES: '3' });
  adminToken = (await t.signUp('Admin')).accessToken;
});
afterAll(() => t.close());

const oldPassword = 'correct horse battery staple';
const newPassword = 'a brand new password';
let ipCounter = 0;
/** Each call from its own IP, so the per-IP limit stays out of tests about other things. */
const anon = () => t.caller(null, `10.7.${Math.floor(ipCounter / 250)}.${ipCounter++ % 250}`);

async function outbox(to: string) {
  await t.api.deps.mail.idle();
  return t.api.database.db.select().from(mailOutbox).where(eq(mailOutbox.to, to));
}

function tokenIn(text: string): string {
  const m = /\/reset-password\?token=([A-Za-z0-9_-]+)/.exec(text);
  if (!m?.[1]) throw new Error(`no reset link in: ${text}`);
  return m[1];
}

/** Asks for a reset and returns the token from the one new mail. */
async function requestToken(email: string): Promise<string> {
  const before = (await outbox(email)).length;
  expect(await anon().auth.requestPasswordReset({ email })).toEqual({ ok: true });
  const mails = await outbox(email);
  expect(mails).toHaveLength(before + 1);
  return tokenIn(mails.at(-1)?.text ?? '');
}

const tokensOf = (userId: string) =>
  t.api.database.db
    .select()
    .from(passwordResetTokens)
    .where(eq(passwordResetTokens.userId, userId));

describe('requestPasswordReset', () => {
  it('mails a real account one link to the web app, with the token stored only hashed', async () => {
    const s = await t.signUp('Forgetful');
    expect(
      await anon().auth.requestPasswordReset({ email: `  ${s.user.email.toUpperCase()} ` }),
    ).toEqual({ ok: true });
    const [mail, ...more] = await outbox(s.user.email);
    expect(more).toHaveLength(0);
    expect(mail?.subject).toBe('Reset your SmartSpace password');
    const token = tokenIn(mail?.text ?? '');
    expect(mail?.text).toContain(`http://127.0.0.1:3000/reset-password?token=${token}`);
    expect(mail?.html).toContain(`href="http://127.0.0.1:3000/reset-password?token=${token}"`);
    expect(Buffer.from(token, 'base64url')).toHaveLength(32);

    const [row, ...others] = await tokensOf(s.user.id);
    expect(others).toHaveLength(0);
    expect(row?.tokenHash).toBe(createHash('sha256').update(token).digest('hex'));
    expect(row?.usedAt).toBeNull();
    const ttlMs = (row?.expiresAt.getTime() ?? 0) - (row?.createdAt.getTime() ?? 0);
    expect(Math.abs(ttlMs - 30 * 60_000)).toBeLessThan(1000);
  });

  it('answers the same for unknown and deactivated emails, and sends them nothing', async () => {
    const gone = await t.signUp('Deactivated');
    await t.caller(adminToken).users.setActive({ userId: gone.user.id, active: false });
    const ghost = `ghost-${randomUUID()}@example.com`;
    expect(await anon().auth.requestPasswordReset({ email: ghost })).toEqual({ ok: true });
    expect(await anon().auth.requestPasswordReset({ email: gone.user.email })).toEqual({
      ok: true,
    });
    expect(await outbox(ghost)).toHaveLength(0);
    expect(await outbox(gone.user.email)).toHaveLength(0);
    expect(await tokensOf(gone.user.id)).toHaveLength(0);
  });

  it('spends comparable time on unknown and known emails', async () => {
    // Fresh accounts, so the per-account limit never cuts a known request short.
    const known = await Promise.all(Array.from({ length: 7 }, (_, i) => t.signUp(`Timing ${i}`)));
    const time = async (email: string) => {
      await t.api.deps.mail.idle();
      const started = performance.now();
      await anon().auth.requestPasswordReset({ email });
      return performance.now() - started;
    };
    await time('warm-up@example.com');
    const k: number[] = [];
    const u: number[] = [];
    for (const [i, s] of known.entries()) {
      k.push(await time(s.user.email));
      u.push(await time(`timing-ghost-${i}@example.com`));
    }
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[3] ?? 0;
    // The answer waits for the rate limits only; the account's token and mail come after.
    // Looking the account up and writing its token synchronously would add a few ms here.
    expect(Math.abs(median(k) - median(u))).toBeLessThan(Math.max(2, median(u)));
    for (const s of known) expect(await outbox(s.user.email)).toHaveLength(1);
  });

  it('past 3 requests an hour for one account answers ok but sends nothing', async () => {
    const s = await t.signUp('Flooded');
    for (let i = 0; i < 4; i++) {
      expect(await anon().auth.requestPasswordReset({ email: s.user.email })).toEqual({
        ok: true,
      });
    }
    expect(await outbox(s.user.email)).toHaveLength(3);
    expect(await tokensOf(s.user.id)).toHaveLength(3);
  });

  it('past 10 requests an hour from one IP answers rate_limited', async () => {
    const ip = '10.99.0.1';
    for (let i = 0; i < 10; i++) {
      await t.caller(null, ip).auth.requestPasswordReset({ email: `ip-${i}@example.com` });
    }
    expect(
      await failure(t.caller(null, ip).auth.requestPasswordReset({ email: 'ip-x@example.com' })),
    ).toEqual({ code: 'TOO_MANY_REQUESTS', appCode: 'rate_limited' });
    // Another IP is not affected.
    expect(await anon().auth.requestPasswordReset({ email: 'ip-y@example.com' })).toEqual({
      ok: true,
    });
  });

  it('refuses a malformed email as bad input', async () => {
    expect((await failure(anon().auth.requestPasswordReset({ email: 'not an email' }))).code).toBe(
      'BAD_REQUEST',
    );
  });
});

describe('resetPassword', () => {
  it('sets the password, ends every session and is audited; the token works once', async () => {
    const first = await t.signUp('Resetter');
    const email = first.user.email;
    const others = [
      await t.caller().auth.login({ email, password: oldPassword }),
      await t.caller().auth.login({ email, password: oldPassword }),
    ];
    const token = await requestToken(email);

    expect(await t.caller(null, '10.8.0.1').auth.resetPassword({ token, newPassword })).toEqual({
      ok: true,
    });

    for (const s of [first, ...others]) {
      expect(await failure(t.caller(s.accessToken).users.me())).toEqual({
        code: 'UNAUTHORIZED',
        appCode: 'auth.unauthenticated',
      });
      expect((await failure(t.caller().auth.refresh({ refreshToken: s.refreshToken }))).code).toBe(
        'UNAUTHORIZED',
      );
    }
    expect(await failure(t.caller().auth.login({ email, password: oldPassword }))).toEqual({
      code: 'UNAUTHORIZED',
      appCode: 'auth.invalid_credentials',
    });
    const fresh = await t.caller().auth.login({ email, password: newPassword });
    expect(fresh.user.id).toBe(first.user.id);

    expect(
      await failure(anon().auth.resetPassword({ token, newPassword: 'yet another one' })),
    ).toEqual({ code: 'BAD_REQUEST', appCode: 'auth.reset_token_invalid' });
    // The failed second use changed nothing: the new session and password still stand.
    expect((await t.caller(fresh.accessToken).users.me()).id).toBe(first.user.id);

    const audit = await t.api.database.db
      .select()
      .from(auditEvents)
      .where(
        and(eq(auditEvents.action, 'auth.password_reset'), eq(auditEvents.target, first.user.id)),
      );
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({
      actorId: first.user.id,
      ip: '10.8.0.1',
      metadata: { sessionsEnded: 3 },
    });
    expect(JSON.stringify(audit[0])).not.toContain(token);
  });

  it('voids the other links sent to the account', async () => {
    const s = await t.signUp('Two Links');
    const a = await requestToken(s.user.email);
    const b = await requestToken(s.user.email);
    await anon().auth.resetPassword({ token: b, newPassword });
    expect(await failure(anon().auth.resetPassword({ token: a, newPassword }))).toEqual({
      code: 'BAD_REQUEST',
      appCode: 'auth.reset_token_invalid',
    });
    expect((await tokensOf(s.user.id)).every((r) => r.usedAt !== null)).toBe(true);
  });

  it('refuses an expired token and leaves the password alone', async () => {
    const s = await t.signUp('Late');
    const token = await requestToken(s.user.email);
    await t.api.database.db
      .update(passwordResetTokens)
      .set({ expiresAt: sql`now() - interval '1 second'` })
      .where(eq(passwordResetTokens.userId, s.user.id));
    expect(await failure(anon().auth.resetPassword({ token, newPassword }))).toEqual({
      code: 'BAD_REQUEST',
      appCode: 'auth.reset_token_invalid',
    });
    await t.caller().auth.login({ email: s.user.email, password: oldPassword });
    expect((await t.caller(s.accessToken).users.me()).id).toBe(s.user.id);
  });

  it('refuses unknown tokens and a link of an account deactivated since', async () => {
    expect(
      await failure(anon().auth.resetPassword({ token: 'x'.repeat(43), newPassword })),
    ).toEqual({ code: 'BAD_REQUEST', appCode: 'auth.reset_token_invalid' });
    const s = await t.signUp('Disabled Later');
    const token = await requestToken(s.user.email);
    await t.caller(adminToken).users.setActive({ userId: s.user.id, active: false });
    expect(await failure(anon().auth.resetPassword({ token, newPassword }))).toEqual({
      code: 'BAD_REQUEST',
      appCode: 'auth.reset_token_invalid',
    });
  });

  it('holds the new password to the registration rules (8..128 characters)', async () => {
    const s = await t.signUp('Short');
    const token = await requestToken(s.user.email);
    for (const bad of ['short', 'x'.repeat(129)]) {
      expect((await failure(anon().auth.resetPassword({ token, newPassword: bad }))).code).toBe(
        'BAD_REQUEST',
      );
    }
    // Bad input did not spend the token.
    expect(await anon().auth.resetPassword({ token, newPassword })).toEqual({ ok: true });
  });

  it('of concurrent uses of one token exactly one wins', async () => {
    const s = await t.signUp('Racer');
    const token = await requestToken(s.user.email);
    const results = await Promise.allSettled(
      ['first racing password', 'second racing password', 'third racing password'].map((p) =>
        anon().auth.resetPassword({ token, newPassword: p }),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((r) => r.status === 'rejected')) {
      expect(await failure(Promise.reject(r.reason))).toEqual({
        code: 'BAD_REQUEST',
        appCode: 'auth.reset_token_invalid',
      });
    }
  });

  it('lifts a sign-in lockout of the account', async () => {
    const s = await t.signUp('Locked Out');
    for (let i = 0; i < 3; i++) {
      await failure(t.caller().auth.login({ email: s.user.email, password: 'wrong one' }));
    }
    expect(
      (await failure(t.caller().auth.login({ email: s.user.email, password: oldPassword })))
        .appCode,
    ).toBe('rate_limited');
    const token = await requestToken(s.user.email);
    await anon().auth.resetPassword({ token, newPassword });
    await t.caller().auth.login({ email: s.user.email, password: newPassword });
  });
});
