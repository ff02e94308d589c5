import { and, eq, gt, isNull, sql } from 'drizzle-orm';
import type { Config } from '../../config';
import type { Db } from '../../db/client';
import { AppError } from '../../lib/errors';
import type { RateLimiter } from '../../lib/rate-limit';
import type { Mailer } from '../../mail/mail';
import { recordAudit } from '../audit/audit.service';
import { normaliseEmail } from '../users/users.dto';
import { users } from '../users/users.table';
import { type ClientInfo, endSessions } from './auth.service';
import { hashPassword } from './password';
import { passwordResetLink, passwordResetMail } from './password-reset.mail';
import { passwordResetTokens } from './password-reset.table';
import { hashToken, newRefreshToken } from './tokens';

/** Password reset by email. */

export const RESET_TOKEN_TTL_MINUTES = 30;
export const RESET_REQUESTS_PER_ACCOUNT_PER_HOUR = 3;
export const RESET_REQUESTS_PER_IP_PER_HOUR = 10;
const HOUR_MS = 3_600_000;

/**
 * Answers the same whether or not the email belongs to an account, in content and in time:
 * the answer waits only for the rate limits (keyed by IP and by the email string, never by
 * the account). Looking the account up, issuing the token and sending the mail happen in
 * the background, so neither the extra database write (and its commit flush) for a real
 * account nor SMTP latency shows in the response. Past the per-account limit nothing is
 * sent, silently: the mailbox is not flooded and the answer stays the same. Past the per-IP
 * limit the caller gets `rate_limited`, which says nothing about any account.
 */
export async function requestPasswordReset(opts: {
  db: Db;
  config: Config;
  limiter: RateLimiter;
  mail: Mailer;
  email: string;
  client: ClientInfo;
}): Promise<void> {
  const email = normaliseEmail(opts.email);
  const byIp = await opts.limiter.hit(
    `reset-ip:${opts.client.ip ?? 'unknown'}`,
    RESET_REQUESTS_PER_IP_PER_HOUR,
    HOUR_MS,
  );
  if (!byIp.allowed) {
    throw new AppError('rate_limited', 'Too many password reset requests; try again later', {
      retryAfterMs: byIp.retryAfterMs,
    });
  }
  const byAccount = await opts.limiter.hit(
    `reset:${email}`,
    RESET_REQUESTS_PER_ACCOUNT_PER_HOUR,
    HOUR_MS,
  );
  if (!byAccount.allowed) return;
  const { db, config } = opts;
  opts.mail.sendLater(async () => {
    const token = await issueResetToken({ db, email });
    if (!token) return null;
    return passwordResetMail({
      to: email,
      link: passwordResetLink(config.publicAppUrl, token),
      ttlMinutes: RESET_TOKEN_TTL_MINUTES,
    });
  });
}

/** A new token for the active account with this (normalised) email; null when there is none. */
async function issueResetToken(opts: { db: Db; email: string }): Promise<string | null> {
  const [user] = await opts.db
    .select({ id: users.id })
    .from(users)
    .where(and(eq(users.email, opts.email), eq(users.active, true)));
  if (!user) return null;
  const token = newRefreshToken();
  await opts.db.insert(passwordResetTokens).values({
    userId: user.id,
    tokenHash: hashToken(token),
    expiresAt: sql`now() + make_interval(mins => ${RESET_TOKEN_TTL_MINUTES})`,
  });
  return token;
}

const liveToken = (tokenHash: string) =>
  and(
    eq(passwordResetTokens.tokenHash, tokenHash),
    isNull(passwordResetTokens.usedAt),
    gt(passwordResetTokens.expiresAt, sql`now()`),
  );

const invalidToken = () =>
  new AppError(
    'auth.reset_token_invalid',
    'This reset link is invalid, already used or expired; ask for a new one',
  );

/**
 * Spends the token and sets the password in one transaction that also voids the user's
 * other reset tokens and ends every session (the sessions trigger then closes the user's
 * sockets on every instance). Of concurrent uses of one token exactly one wins: the token is
 * spent by a conditional UPDATE.
 */
export async function resetPassword(opts: {
  db: Db;
  limiter: RateLimiter;
  token: string;
  newPassword: string;
  client: ClientInfo;
}): Promise<void> {
  const tokenHash = hashToken(opts.token);
  // A cheap look first, so a bad token costs no argon2 work.
  const [live] = await opts.db
    .select({ id: passwordResetTokens.id })
    .from(passwordResetTokens)
    .where(liveToken(tokenHash));
  if (!live) throw invalidToken();
  const passwordHash = await hashPassword(opts.newPassword);

  const email = await opts.db.transaction(async (tx) => {
    const [spent] = await tx
      .update(passwordResetTokens)
      .set({ usedAt: new Date() })
      .where(liveToken(tokenHash))
      .returning({ userId: passwordResetTokens.userId });
    if (!spent) throw invalidToken();
    // A deactivated account cannot be taken back through a link sent before.
    const [user] = await tx
      .update(users)
      .set({ passwordHash, updatedAt: new Date() })
      .where(and(eq(users.id, spent.userId), eq(users.active, true)))
      .returning({ email: users.email });
    if (!user) throw invalidToken();
    await tx
      .update(passwordResetTokens)
      .set({ usedAt: new Date() })
      .where(and(eq(passwordResetTokens.userId, spent.userId), isNull(passwordResetTokens.usedAt)));
    const ended = await endSessions({ db: tx, userId: spent.userId, reason: 'password_reset' });
    await recordAudit({
      db: tx,
      actorId: spent.userId,
      action: 'auth.password_reset',
      target: spent.userId,
      ip: opts.client.ip,
      metadata: { sessionsEnded: ended },
    });
    return user.email;
  });
  // Proving control of the mailbox lifts a sign-in lockout the forgotten password caused.
  await opts.limiter.reset(`login:${email}`);
}
