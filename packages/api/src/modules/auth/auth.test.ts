import { SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApi, failure, TEST_JWT_SECRET, type TestApi } from '../../testing';

let t: TestApi;
beforeAll(async () => {
  t = await createTestApi({ LOGIN_ATTEMPTS_PER_15_MINUTES: '5' });
});
afterAll(() => t.close());

const password = 'correct horse battery staple';

describe('register and login', () => {
  it('makes the first user admin, later users plain users, and hashes with argon2id', async () => {
    const first = await t.signUp('First');
    const second = await t.signUp('Second');
    expect(first.user.role).toBe('admin');
    expect(second.user.role).toBe('user');
    const [row] = await t.api.database.db.query.users.findMany({
      where: (u, { eq }) => eq(u.id, second.user.id),
    });
    expect(row?.passwordHash).toMatch(/^\$argon2id\$v=19\$m=19456,p=1,t=2\$/);
    expect(row?.passwordHash).not.toContain(password);
  });

  it('normalises email: login and uniqueness ignore case and spaces', async () => {
    await t.caller().auth.register({ email: 'Mixed.Case@Example.com', password, name: 'Mixed' });
    const s = await t.caller().auth.login({ email: '  MIXED.case@example.COM ', password });
    expect(s.user.email).toBe('mixed.case@example.com');
    expect(
      await failure(
        t.caller().auth.register({ email: 'mixed.CASE@example.com', password, name: 'Dup' }),
      ),
    ).toEqual({ code: 'CONFLICT', appCode: 'auth.email_taken' });
  });

  it('answers an unknown email exactly like a wrong password', async () => {
    const s = await t.signUp('Known');
    const wrong = await failure(
      t.caller().auth.login({ email: s.user.email, password: 'wrong password' }),
    );
    const unknown = await failure(
      t.caller().auth.login({ email: 'nobody-here@example.com', password: 'wrong password' }),
    );
    expect(wrong).toEqual({ code: 'UNAUTHORIZED', appCode: 'auth.invalid_credentials' });
    expect(unknown).toEqual(wrong);
  });

  it('spends comparable time on unknown and known emails', async () => {
    const s = await t.signUp('Timing');
    const time = async (email: string) => {
      const started = performance.now();
      await failure(t.caller().auth.login({ email, password: 'not the password' }));
      return performance.now() - started;
    };
    await time('warm-up@example.com');
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 3; i++) {
      known.push(await time(s.user.email));
      unknown.push(await time(`ghost-${i}@example.com`));
    }
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[1] ?? 0;
    // Both run one argon2 verification; without the dummy check "unknown" would be ~0 ms.
    expect(median(unknown)).toBeGreaterThan(median(known) * 0.5);
  });

  it('rejects bad input with field errors', async () => {
    const e = await failure(
      t.caller().auth.register({ email: 'not-an-email', password: 'short', name: '' }),
    );
    expect(e.code).toBe('BAD_REQUEST');
  });

  it('limits login attempts per account, across IPs', async () => {
    const s = await t.signUp('Limited');
    for (let i = 0; i < 5; i++) {
      const ip = `10.0.0.${i}`;
      expect(
        (
          await failure(
            t.caller(null, ip).auth.login({ email: s.user.email, password: 'nope nope' }),
          )
        ).appCode,
      ).toBe('auth.invalid_credentials');
    }
    expect(
      await failure(t.caller(null, '10.0.1.1').auth.login({ email: s.user.email, password })),
    ).toEqual({
      code: 'TOO_MANY_REQUESTS',
      appCode: 'rate_limited',
    });
  });

  it('refuses a deactivated account only once the password is right', async () => {
    const admin = await t.caller().auth.login({ email: (await firstAdmin()).email, password });
    const s = await t.signUp('Disabled');
    await t.caller(admin.accessToken).users.setActive({ userId: s.user.id, active: false });
    expect(
      (await failure(t.caller().auth.login({ email: s.user.email, password: 'wrong one' })))
        .appCode,
    ).toBe('auth.invalid_credentials');
    expect(await failure(t.caller().auth.login({ email: s.user.email, password }))).toEqual({
      code: 'FORBIDDEN',
      appCode: 'auth.account_disabled',
    });
  });
});

async function firstAdmin() {
  const rows = await t.api.database.db.query.users.findMany({
    where: (u, { eq }) => eq(u.role, 'admin'),
  });
  const admin = rows[0];
  if (!admin) throw new Error('no admin');
  return admin;
}

describe('access tokens', () => {
  const { issuer, audience } = { issuer: 'smartspace', audience: 'smartspace-api' };
  const key = new TextEncoder().encode(TEST_JWT_SECRET);

  async function forge(opts: {
    sub: string;
    sid: string;
    alg?: string;
    typ?: string;
    iss?: string;
    aud?: string;
    exp?: number;
    secret?: Uint8Array;
  }) {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ sid: opts.sid })
      .setProtectedHeader({ alg: opts.alg ?? 'HS256', typ: opts.typ ?? 'at+jwt' })
      .setIssuer(opts.iss ?? issuer)
      .setAudience(opts.aud ?? audience)
      .setSubject(opts.sub)
      .setIssuedAt(now - 60)
      .setExpirationTime(opts.exp ?? now + 600)
      .setJti(crypto.randomUUID())
      .sign(opts.secret ?? key);
  }

  it('accepts a well-formed token (the forge helper is faithful)', async () => {
    const s = await t.signUp('Forged Ok');
    const sid = JSON.parse(
      Buffer.from(s.accessToken.split('.')[1] ?? '', 'base64url').toString(),
    ).sid;
    const token = await forge({ sub: s.user.id, sid });
    expect((await t.caller(token).users.me()).id).toBe(s.user.id);
  });

  it('rejects alg none, wrong key, wrong aud/iss/typ, expired, and a refresh token', async () => {
    const s = await t.signUp('Victim');
    const sid = JSON.parse(
      Buffer.from(s.accessToken.split('.')[1] ?? '', 'base64url').toString(),
    ).sid;
    const none = new UnsecuredJWT({ sid })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject(s.user.id)
      .setIssuedAt()
      .setExpirationTime('10m')
      .setJti('x')
      .encode();
    const attacks = [
      none,
      await forge({
        sub: s.user.id,
        sid,
        secret: new TextEncoder().encode('another-secret-another-secret-another'),
      }),
      await forge({ sub: s.user.id, sid, aud: 'someone-else' }),
      await forge({ sub: s.user.id, sid, iss: 'evil' }),
      await forge({ sub: s.user.id, sid, typ: 'JWT' }),
      await forge({ sub: s.user.id, sid, exp: Math.floor(Date.now() / 1000) - 5 }),
      s.refreshToken,
      `${s.accessToken}x`,
    ];
    for (const token of attacks) {
      expect(await failure(t.caller(token).users.me())).toEqual({
        code: 'UNAUTHORIZED',
        appCode: 'auth.unauthenticated',
      });
    }
  });
});

describe('refresh tokens', () => {
  it('rotates: the new pair works, the old refresh token does not', async () => {
    const s = await t.signUp('Rotating');
    const next = await t.caller().auth.refresh({ refreshToken: s.refreshToken });
    expect(next.refreshToken).not.toBe(s.refreshToken);
    expect((await t.caller(next.accessToken).users.me()).id).toBe(s.user.id);
  });

  it('reuse after three rotations revokes all four tokens and the access tokens', async () => {
    const s = await t.signUp('Reused');
    const chain = [s];
    for (let i = 0; i < 3; i++) {
      const last = chain[chain.length - 1];
      if (!last) throw new Error('empty chain');
      chain.push(await t.caller().auth.refresh({ refreshToken: last.refreshToken }));
    }
    expect(await failure(t.caller().auth.refresh({ refreshToken: s.refreshToken }))).toEqual({
      code: 'UNAUTHORIZED',
      appCode: 'auth.refresh_reused',
    });
    for (const link of chain) {
      // Every refresh token of the family is dead, including the newest one...
      expect(
        (await failure(t.caller().auth.refresh({ refreshToken: link.refreshToken }))).code,
      ).toBe('UNAUTHORIZED');
      // ...and so is every access token minted from it.
      expect((await failure(t.caller(link.accessToken).users.me())).code).toBe('UNAUTHORIZED');
    }
  });

  it('20 concurrent refreshes with one token: exactly one succeeds', async () => {
    const s = await t.signUp('Racing');
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => t.caller().auth.refresh({ refreshToken: s.refreshToken })),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    expect(ok).toHaveLength(1);
    const sessions = await t.api.database.db.query.refreshTokens.findMany();
    const bySession = sessions.filter((r) => r.usedAt === null);
    // The chain never forks: no session holds two live refresh tokens.
    const counts = new Map<string, number>();
    for (const r of bySession) counts.set(r.sessionId, (counts.get(r.sessionId) ?? 0) + 1);
    expect(Math.max(...counts.values())).toBe(1);
  });

  it('rejects an unknown token and logs out without telling whether it existed', async () => {
    expect(await failure(t.caller().auth.refresh({ refreshToken: 'made-up' }))).toEqual({
      code: 'UNAUTHORIZED',
      appCode: 'auth.refresh_invalid',
    });
    expect(await t.caller().auth.logout({ refreshToken: 'made-up' })).toEqual({ ok: true });
  });

  it('logout ends that session only', async () => {
    const s = await t.signUp('Two Devices');
    const other = await t.caller().auth.login({ email: s.user.email, password });
    await t.caller().auth.logout({ refreshToken: s.refreshToken });
    expect((await failure(t.caller(s.accessToken).users.me())).code).toBe('UNAUTHORIZED');
    expect((await failure(t.caller().auth.refresh({ refreshToken: s.refreshToken }))).code).toBe(
      'UNAUTHORIZED',
    );
    expect((await t.caller(other.accessToken).users.me()).id).toBe(s.user.id);
  });

  it('an expired session cannot be refreshed', async () => {
    const s = await t.signUp('Expired');
    const { sessions } = await import('./sessions.table');
    const { eq } = await import('drizzle-orm');
    await t.api.database.db
      .update(sessions)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(sessions.userId, s.user.id));
    expect(await failure(t.caller().auth.refresh({ refreshToken: s.refreshToken }))).toEqual({
      code: 'UNAUTHORIZED',
      appCode: 'auth.refresh_invalid',
    });
  });
});

describe('ending sessions', () => {
  it('logoutAll ends every session and access token at once', async () => {
    const a = await t.signUp('Everywhere');
    const b = await t.caller().auth.login({ email: a.user.email, password });
    expect(await t.caller(a.accessToken).auth.logoutAll()).toEqual({ ok: true });
    for (const s of [a, b]) {
      expect((await failure(t.caller(s.accessToken).users.me())).code).toBe('UNAUTHORIZED');
      expect((await failure(t.caller().auth.refresh({ refreshToken: s.refreshToken }))).code).toBe(
        'UNAUTHORIZED',
      );
    }
    // Signing in again works.
    const c = await t.caller().auth.login({ email: a.user.email, password });
    expect((await t.caller(c.accessToken).users.me()).id).toBe(a.user.id);
  });

  it('changePassword checks the current one, keeps this session and ends the others', async () => {
    const a = await t.signUp('Changer');
    const b = await t.caller().auth.login({ email: a.user.email, password });
    expect(
      await failure(
        t
          .caller(a.accessToken)
          .auth.changePassword({ currentPassword: 'wrong!!', newPassword: 'new password 1' }),
      ),
    ).toEqual({ code: 'BAD_REQUEST', appCode: 'auth.wrong_password' });
    await t
      .caller(a.accessToken)
      .auth.changePassword({ currentPassword: password, newPassword: 'new password 1' });
    expect((await t.caller(a.accessToken).users.me()).id).toBe(a.user.id);
    expect((await failure(t.caller(b.accessToken).users.me())).code).toBe('UNAUTHORIZED');
    expect((await failure(t.caller().auth.login({ email: a.user.email, password }))).appCode).toBe(
      'auth.invalid_credentials',
    );
    await t.caller().auth.login({ email: a.user.email, password: 'new password 1' });
  });

  it('signed-out callers are refused on authed procedures', async () => {
    expect(await failure(t.caller().auth.logoutAll())).toEqual({
      code: 'UNAUTHORIZED',
      appCode: 'auth.unauthenticated',
    });
  });
});
