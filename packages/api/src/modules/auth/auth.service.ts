import { and, eq, gt, isNull, ne, type SQL, sql } from 'drizzle-orm';
import type { PgColumn, PgTable } from 'drizzle-orm/pg-core';
import type { Config } from '../../config';
import type { Db } from '../../db/client';
import { directSelect } from '../../db/direct';
import { type Actor, auditedBy } from '../../lib/actor';
import { isUniqueViolation } from '../../lib/db-errors';
import { AppError } from '../../lib/errors';
import type { RateLimiter } from '../../lib/rate-limit';
import { recordAudit } from '../audit/audit.service';
import {
  type ProjectRole,
  type ProjectRow,
  projectMembers,
  projects,
} from '../projects/projects.table';
import { normaliseEmail, toUser, type User } from '../users/users.dto';
import { users } from '../users/users.table';
import type { Session } from './auth.dto';
import { burnPasswordCheck, hashPassword, needsRehash, verifyPassword } from './password';
import { forgetSessions, type SessionCache, type SessionRow } from './session-cache';
import { refreshTokens, sessions } from './sessions.table';
import { hashToken, newRefreshToken, signAccessToken, verifyAccessToken } from './tokens';

export interface AuthUser extends User {
  sessionId: string;
}

export interface ClientInfo {
  ip?: string | undefined;
  userAgent?: string | undefined;
}

const FIRST_USER_LOCK = 727_274_002;

export async function register(opts: {
  db: Db;
  config: Config;
  email: string;
  password: string;
  name: string;
  client: ClientInfo;
}): Promise<Session> {
  const email = normaliseEmail(opts.email);
  // Hash before looking the email up, so a taken address costs the same time as a free one.
  const passwordHash = await hashPassword(opts.password);
  let row: typeof users.$inferSelect;
  try {
    row = await opts.db.transaction(async (tx) => {
      // Serialises registrations only while deciding who is first (and becomes admin).
      await tx.execute(sql`select pg_advisory_xact_lock(${FIRST_USER_LOCK})`);
      const [{ n } = { n: 0 }] = await tx.select({ n: sql<number>`count(*)::int` }).from(users);
      const admin = n === 0 || opts.config.adminEmails.includes(email);
      const [inserted] = await tx
        .insert(users)
        .values({ email, name: opts.name.trim(), passwordHash, role: admin ? 'admin' : 'user' })
        .returning();
      if (!inserted) throw new Error('insert returned no row');
      await recordAudit({
        db: tx,
        actorId: inserted.id,
        action: 'auth.registered',
        target: inserted.id,
        ip: opts.client.ip,
        metadata: { role: inserted.role },
      });
      return inserted;
    });
  } catch (e) {
    if (isUniqueViolation(e))
      throw new AppError('auth.email_taken', 'That email cannot be registered');
    throw e;
  }
  return startSession({ db: opts.db, config: opts.config, user: row, client: opts.client });
}

export async function login(opts: {
  db: Db;
  config: Config;
  limiter: RateLimiter;
  email: string;
  password: string;
  client: ClientInfo;
}): Promise<Session> {
  const email = normaliseEmail(opts.email);
  const key = `login:${email}`;
  const limit = await opts.limiter.hit(key, opts.config.loginAttemptsPer15Minutes, 15 * 60_000);
  if (!limit.allowed) {
    throw new AppError('rate_limited', 'Too many sign-in attempts for this account; try later', {
      retryAfterMs: limit.retryAfterMs,
    });
  }
  // Every rejected attempt is audited, known account or not, so both paths cost the same.
  const failed = (actorId: string | null, reason: string) =>
    recordAudit({
      db: opts.db,
      actorId,
      action: 'auth.login_failed',
      target: actorId,
      ip: opts.client.ip,
      metadata: { email, reason },
    });
  const [user] = await opts.db.select().from(users).where(eq(users.email, email)).limit(1);
  if (!user) {
    await burnPasswordCheck(opts.password);
    await failed(null, 'unknown_email');
    throw new AppError('auth.invalid_credentials', 'Email or password is wrong');
  }
  if (!(await verifyPassword(user.passwordHash, opts.password))) {
    await failed(user.id, 'wrong_password');
    throw new AppError('auth.invalid_credentials', 'Email or password is wrong');
  }
  // Only someone holding the password learns that the account is disabled.
  if (!user.active) {
    await failed(user.id, 'account_disabled');
    throw new AppError('auth.account_disabled', 'This account is disabled');
  }
  await opts.limiter.reset(key);

  const patch: Partial<typeof users.$inferInsert> = {};
  if (user.role !== 'admin' && opts.config.adminEmails.includes(email)) patch.role = 'admin';
  if (needsRehash(user.passwordHash)) patch.passwordHash = await hashPassword(opts.password);
  let current = user;
  if (Object.keys(patch).length > 0) {
    current = await opts.db.transaction(async (tx) => {
      const [updated] = await tx
        .update(users)
        .set({ ...patch, updatedAt: new Date() })
        .where(eq(users.id, user.id))
        .returning();
      if (patch.role) forgetSessions({ userId: user.id });
      if (updated && patch.role) {
        await recordAudit({
          db: tx,
          actorId: null,
          action: 'users.role_changed',
          target: user.id,
          ip: opts.client.ip,
          metadata: { from: user.role, to: patch.role, reason: 'admin_emails' },
        });
      }
      return updated ?? user;
    });
  }
  return startSession({
    db: opts.db,
    config: opts.config,
    user: current,
    client: opts.client,
    audit: 'auth.login_succeeded',
  });
}

async function startSession(opts: {
  db: Db;
  config: Config;
  user: typeof users.$inferSelect;
  client: ClientInfo;
  /** The audit action to record with the new session, if any. */
  audit?: string;
}): Promise<Session> {
  const refreshToken = newRefreshToken();
  const expiresAt = new Date(Date.now() + opts.config.refreshTokenTtlDays * 86_400_000);
  const sessionId = await opts.db.transaction(async (tx) => {
    const [session] = await tx
      .insert(sessions)
      .values({
        userId: opts.user.id,
        expiresAt,
        ip: opts.client.ip ?? null,
        userAgent: opts.client.userAgent?.slice(0, 500) ?? null,
      })
      .returning({ id: sessions.id });
    if (!session) throw new Error('insert returned no row');
    await tx
      .insert(refreshTokens)
      .values({ sessionId: session.id, tokenHash: hashToken(refreshToken) });
    if (opts.audit) {
      await recordAudit({
        db: tx,
        actorId: opts.user.id,
        action: opts.audit,
        target: opts.user.id,
        ip: opts.client.ip,
        metadata: { sessionId: session.id },
      });
    }
    return session.id;
  });
  const access = await signAccessToken(opts.config.jwt, { userId: opts.user.id, sessionId });
  return {
    user: toUser(opts.user),
    accessToken: access.token,
    refreshToken,
    accessTokenExpiresAt: access.expiresAt.toISOString(),
  };
}

/**
 * Exchanges a refresh token for a new pair. The token is spent by one conditional UPDATE,
 * so of many concurrent exchanges exactly one wins and the chain never forks. Presenting a
 * spent token again means it leaked: the whole session ends, and that is committed on its
 * own so the error response cannot roll it back.
 */
export async function refresh(opts: {
  db: Db;
  config: Config;
  refreshToken: string;
  client?: ClientInfo;
}): Promise<Session> {
  const tokenHash = hashToken(opts.refreshToken);
  const outcome = await opts.db.transaction(async (tx) => {
    const [spent] = await tx
      .update(refreshTokens)
      .set({ usedAt: new Date() })
      .where(and(eq(refreshTokens.tokenHash, tokenHash), isNull(refreshTokens.usedAt)))
      .returning({ sessionId: refreshTokens.sessionId });
    if (!spent) return { kind: 'not-current' as const };
    const [row] = await tx
      .select({ session: sessions, user: users })
      .from(sessions)
      .innerJoin(users, eq(users.id, sessions.userId))
      .where(eq(sessions.id, spent.sessionId));
    if (!row || row.session.revokedAt || row.session.expiresAt <= new Date() || !row.user.active) {
      return { kind: 'ended' as const };
    }
    const next = newRefreshToken();
    await tx
      .insert(refreshTokens)
      .values({ sessionId: row.session.id, tokenHash: hashToken(next) });
    await tx
      .update(sessions)
      .set({ lastUsedAt: new Date() })
      .where(eq(sessions.id, row.session.id));
    return { kind: 'rotated' as const, user: row.user, sessionId: row.session.id, next };
  });

  if (outcome.kind === 'rotated') {
    const access = await signAccessToken(opts.config.jwt, {
      userId: outcome.user.id,
      sessionId: outcome.sessionId,
    });
    return {
      user: toUser(outcome.user),
      accessToken: access.token,
      refreshToken: outcome.next,
      accessTokenExpiresAt: access.expiresAt.toISOString(),
    };
  }
  if (outcome.kind === 'not-current') {
    const [known] = await opts.db
      .select({ sessionId: refreshTokens.sessionId, userId: sessions.userId })
      .from(refreshTokens)
      .innerJoin(sessions, eq(sessions.id, refreshTokens.sessionId))
      .where(eq(refreshTokens.tokenHash, tokenHash));
    if (known) {
      await opts.db.transaction(async (tx) => {
        const ended = await endSessions({
          db: tx,
          sessionId: known.sessionId,
          reason: 'refresh_reuse',
        });
        await recordAudit({
          db: tx,
          actorId: known.userId,
          action: 'auth.refresh_reused',
          target: known.userId,
          ip: opts.client?.ip,
          metadata: { sessionId: known.sessionId, sessionsEnded: ended },
        });
      });
      throw new AppError(
        'auth.refresh_reused',
        'This refresh token was already used; sign in again',
      );
    }
  }
  throw new AppError('auth.refresh_invalid', 'Refresh token is invalid or expired; sign in again');
}

/** Ends the session a refresh token belongs to. Unknown tokens are ignored (same answer). */
export async function logout(opts: { db: Db; refreshToken: string }): Promise<void> {
  const [known] = await opts.db
    .select({ sessionId: refreshTokens.sessionId })
    .from(refreshTokens)
    .where(eq(refreshTokens.tokenHash, hashToken(opts.refreshToken)));
  if (known) await endSessions({ db: opts.db, sessionId: known.sessionId, reason: 'logout' });
}

/**
 * Ends sessions: one (`sessionId`), or all of a user's (`userId`), optionally sparing one.
 * Access tokens carry their session id, so they stop working at once too.
 */
export async function endSessions(opts: {
  db: Db;
  sessionId?: string;
  userId?: string;
  exceptSessionId?: string;
  reason: string;
}): Promise<number> {
  const conditions = [isNull(sessions.revokedAt)];
  if (opts.sessionId) conditions.push(eq(sessions.id, opts.sessionId));
  if (opts.userId) conditions.push(eq(sessions.userId, opts.userId));
  if (opts.exceptSessionId) conditions.push(ne(sessions.id, opts.exceptSessionId));
  if (!opts.sessionId && !opts.userId) throw new Error('endSessions needs a session or a user');
  // Forgotten here at once; the sessions trigger's NOTIFY tells every instance on commit.
  forgetSessions(opts);
  const ended = await opts.db
    .update(sessions)
    .set({ revokedAt: new Date(), revokedReason: opts.reason })
    .where(and(...conditions))
    .returning({ id: sessions.id });
  return ended.length;
}

/** Ends every session of the user, the caller's included. */
export async function logoutAll(opts: { db: Db; actor: Actor }): Promise<void> {
  const { userId } = opts.actor;
  await opts.db.transaction(async (tx) => {
    const ended = await endSessions({ db: tx, userId, reason: 'logout_all' });
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'auth.logout_all',
      target: userId,
      metadata: { sessionsEnded: ended },
    });
  });
}

export async function changePassword(opts: {
  db: Db;
  /** The signed-in user: the session that makes the change stays, the others end. */
  user: AuthUser;
  actor: Actor;
  currentPassword: string;
  newPassword: string;
}): Promise<void> {
  const [row] = await opts.db
    .select({ hash: users.passwordHash })
    .from(users)
    .where(eq(users.id, opts.user.id));
  if (!row || !(await verifyPassword(row.hash, opts.currentPassword))) {
    throw new AppError('auth.wrong_password', 'The current password is wrong');
  }
  const passwordHash = await hashPassword(opts.newPassword);
  await opts.db.transaction(async (tx) => {
    await tx
      .update(users)
      .set({ passwordHash, updatedAt: new Date() })
      .where(eq(users.id, opts.user.id));
    const ended = await endSessions({
      db: tx,
      userId: opts.user.id,
      exceptSessionId: opts.user.sessionId,
      reason: 'password_changed',
    });
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'auth.password_changed',
      target: opts.user.id,
      metadata: { sessionsEnded: ended },
    });
  });
}

/** The columns of the user a session check returns (never the password hash). */
const sessionUserColumns = {
  id: users.id,
  email: users.email,
  name: users.name,
  role: users.role,
  createdAt: users.createdAt,
};

/** The conditions under which an access token's session still stands. */
const sessionStands = and(
  eq(sessions.id, sql.placeholder('sessionId')),
  eq(sessions.userId, sql.placeholder('userId')),
  isNull(sessions.revokedAt),
  gt(sessions.expiresAt, sql`now()`),
  eq(users.active, true),
);

/**
 * The session check every authenticated call makes: one indexed join, prepared once per
 * database so it is planned and built once, not per request.
 */
function prepareSessionQuery(db: Db) {
  return db
    .select({ ...sessionUserColumns, expiresAt: sessions.expiresAt })
    .from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(sessionStands)
    .prepare('auth_session');
}

/** The project's columns as the checks select them (read back by `projectAt`). */
const projectColumns = {
  projectId: projects.id,
  projectName: projects.name,
  projectDescription: projects.description,
  projectCreatedAt: projects.createdAt,
  projectUpdatedAt: projects.updatedAt,
};

/** The project row from `projectColumns` selected from position `at`; null when absent. */
function projectAt(v: unknown[], at: number): ProjectRow | null {
  const id = v[at] as string | null;
  return id
    ? {
        id,
        name: v[at + 1] as string,
        description: v[at + 2] as string | null,
        createdAt: v[at + 3] as Date,
        updatedAt: v[at + 4] as Date,
      }
    : null;
}

/** The user from `sessionUserColumns`, selected first. */
function userAt(v: unknown[]) {
  return {
    id: v[0] as string,
    email: v[1] as string,
    name: v[2] as string,
    role: v[3] as AuthUser['role'],
    createdAt: v[4] as Date,
  };
}

/**
 * The same check plus the caller's membership of one project and that project's row, in one
 * round trip: project-scoped calls used to make three (session, membership, project). The
 * membership and project are left joins, so a live session of a non-member still answers (with
 * no role) and the caller learns the same as before: signed in, but no such project.
 */
function prepareSessionProjectQuery(db: Db) {
  const selection = {
    ...sessionUserColumns,
    memberRole: projectMembers.role,
    ...projectColumns,
    expiresAt: sessions.expiresAt,
  };
  const query = db
    .select(selection)
    .from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .leftJoin(
      projectMembers,
      and(
        eq(projectMembers.projectId, sql.placeholder('projectId')),
        eq(projectMembers.userId, sessions.userId),
      ),
    )
    .leftJoin(projects, eq(projects.id, projectMembers.projectId))
    .where(sessionStands);
  return directSelect(db, query, 'auth_session_project', Object.values(selection), (v) => ({
    ...userAt(v),
    memberRole: v[5] as ProjectRole | null,
    project: projectAt(v, 6),
    expiresAt: v[11] as Date,
  }));
}

/**
 * The membership and project part of the check alone, for a caller whose session check is
 * kept (session-cache.ts): two primary-key lookups, read on every call.
 */
function prepareMemberProjectQuery(db: Db) {
  const selection = { memberRole: projectMembers.role, ...projectColumns };
  const query = db
    .select(selection)
    .from(projectMembers)
    .innerJoin(projects, eq(projects.id, projectMembers.projectId))
    .where(
      and(
        eq(projectMembers.projectId, sql.placeholder('projectId')),
        eq(projectMembers.userId, sql.placeholder('userId')),
      ),
    );
  return directSelect(db, query, 'auth_member_project', Object.values(selection), (v) => ({
    role: v[0] as ProjectRole,
    // An inner join: the project is there.
    project: projectAt(v, 1) as ProjectRow,
  }));
}

/**
 * How a kind of resource finds its project: a scalar subquery of the resource's id, e.g.
 * `(select project_id from conversations where id = $1)`. resourceProcedure reads it in the
 * session check's query (authenticateInResource) and, for API keys, on its own.
 */
export interface ResourceOwner {
  /** Names its prepared statement: one per kind of resource. */
  name: string;
  project: (id: SQL) => SQL;
}

/** The owner of a resource that has its project in a column of its own row. */
export function ownedBy(
  name: string,
  table: PgTable,
  id: PgColumn,
  projectId: PgColumn,
): ResourceOwner {
  return {
    name,
    project: (value) => sql`(select ${projectId} from ${table} where ${id} = ${value})`,
  };
}

/**
 * The session check plus the caller's membership of the project that owns a resource, in one
 * round trip (resource-addressed calls used to make three: session, owner, membership). A left
 * join: a live session answers whether or not the resource exists or the caller is a member.
 */
function prepareSessionResourceQuery(db: Db, owner: ResourceOwner) {
  const selection = {
    ...sessionUserColumns,
    memberRole: projectMembers.role,
    memberProjectId: projectMembers.projectId,
    expiresAt: sessions.expiresAt,
  };
  const query = db
    .select(selection)
    .from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .leftJoin(
      projectMembers,
      and(
        eq(projectMembers.projectId, owner.project(sql`${sql.placeholder('resourceId')}`)),
        eq(projectMembers.userId, sessions.userId),
      ),
    )
    .where(sessionStands);
  return directSelect(db, query, `auth_session_${owner.name}`, Object.values(selection), (v) => ({
    ...userAt(v),
    memberRole: v[5] as ProjectRole | null,
    memberProjectId: v[6] as string | null,
    expiresAt: v[7] as Date,
  }));
}

/** The membership part of the resource check alone, for a caller whose session check is kept. */
function prepareMemberResourceQuery(db: Db, owner: ResourceOwner) {
  const selection = { role: projectMembers.role, projectId: projectMembers.projectId };
  const query = db
    .select(selection)
    .from(projectMembers)
    .where(
      and(
        eq(projectMembers.projectId, owner.project(sql`${sql.placeholder('resourceId')}`)),
        eq(projectMembers.userId, sql.placeholder('userId')),
      ),
    );
  return directSelect(db, query, `auth_member_${owner.name}`, Object.values(selection), (v) => ({
    role: v[0] as ProjectRole,
    projectId: v[1] as string,
  }));
}

/** Prepared statements per database (a test process opens several). */
function preparedFor<T>(cache: WeakMap<Db, T>, db: Db, prepare: (db: Db) => T): T {
  let query = cache.get(db);
  if (!query) {
    query = prepare(db);
    cache.set(db, query);
  }
  return query;
}
const sessionQueries = new WeakMap<Db, ReturnType<typeof prepareSessionQuery>>();
const sessionProjectQueries = new WeakMap<Db, ReturnType<typeof prepareSessionProjectQuery>>();
const sessionResourceQueries = new WeakMap<
  Db,
  Map<string, ReturnType<typeof prepareSessionResourceQuery>>
>();
const memberProjectQueries = new WeakMap<Db, ReturnType<typeof prepareMemberProjectQuery>>();
const memberResourceQueries = new WeakMap<
  Db,
  Map<string, ReturnType<typeof prepareMemberResourceQuery>>
>();

/** The prepared statement of `owner` in `cache`, made on first use. */
function perOwner<T>(
  cache: WeakMap<Db, Map<string, T>>,
  db: Db,
  owner: ResourceOwner,
  prepare: (db: Db, owner: ResourceOwner) => T,
): T {
  const perDb = preparedFor(cache, db, () => new Map<string, T>());
  let query = perDb.get(owner.name);
  if (!query) {
    query = prepare(db, owner);
    perDb.set(owner.name, query);
  }
  return query;
}

/** toUser plus the session, written out: a spread here cost more than the rest of it. */
function sessionUser(
  row: Pick<typeof users.$inferSelect, 'id' | 'email' | 'name' | 'role' | 'createdAt'>,
  sessionId: string,
): AuthUser {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    role: row.role,
    createdAt: row.createdAt.toISOString(),
    sessionId,
  };
}

/** Keeps a session check that stood (see SessionCache.set for `generation`). */
function keep(
  cache: SessionCache | undefined,
  claims: { sessionId: string; userId: string },
  row: Omit<SessionRow, 'expiresAt'> & { expiresAt: Date },
  generation: number,
): void {
  cache?.set(
    claims.sessionId,
    claims.userId,
    { ...row, expiresAt: row.expiresAt.getTime() },
    generation,
  );
}

/** Resolves an access token to its user: valid signature and claims, live session, active user. */
export async function authenticate(opts: {
  db: Db;
  config: Config;
  token: string;
  /** Session checks that stood, kept in this process (session-cache.ts). */
  cache?: SessionCache | undefined;
}): Promise<AuthUser | null> {
  const claims = await verifyAccessToken(opts.config.jwt, opts.token);
  if (!claims) return null;
  const { cache } = opts;
  const kept = cache?.get(claims.sessionId, claims.userId);
  if (kept) return sessionUser(kept, claims.sessionId);
  const generation = cache?.generation ?? 0;
  const query = preparedFor(sessionQueries, opts.db, prepareSessionQuery);
  const [row] = await query.execute({ sessionId: claims.sessionId, userId: claims.userId });
  if (!row) return null;
  keep(cache, claims, row, generation);
  return sessionUser(row, claims.sessionId);
}

/** What a session check read about one project: the caller's role there and the project. */
export interface ProjectAccess {
  projectId: string;
  /** Null when the caller is not a member (or the project does not exist). */
  member: { role: ProjectRole; project: ProjectRow } | null;
}

/**
 * authenticate(), and in the same query the user's membership of `projectId` and the project
 * (a uuid: the caller checks its form first). Null when the token or its session does not
 * stand, exactly as authenticate().
 */
export async function authenticateInProject(opts: {
  db: Db;
  config: Config;
  token: string;
  projectId: string;
  /** Session checks that stood, kept in this process (session-cache.ts). */
  cache?: SessionCache | undefined;
}): Promise<{ user: AuthUser; access: ProjectAccess } | null> {
  const claims = await verifyAccessToken(opts.config.jwt, opts.token);
  if (!claims) return null;
  const { cache } = opts;
  const kept = cache?.get(claims.sessionId, claims.userId);
  if (kept) {
    // The session as kept; the membership and the project read now, as always.
    const query = preparedFor(memberProjectQueries, opts.db, prepareMemberProjectQuery);
    const [member] = await query.execute({ projectId: opts.projectId, userId: claims.userId });
    return {
      user: sessionUser(kept, claims.sessionId),
      access: { projectId: opts.projectId, member: member ?? null },
    };
  }
  const generation = cache?.generation ?? 0;
  const query = preparedFor(sessionProjectQueries, opts.db, prepareSessionProjectQuery);
  const [row] = await query.execute({
    sessionId: claims.sessionId,
    userId: claims.userId,
    projectId: opts.projectId,
  });
  if (!row) return null;
  keep(cache, claims, row, generation);
  const user = sessionUser(row, claims.sessionId);
  const member =
    row.memberRole && row.project ? { role: row.memberRole, project: row.project } : null;
  return { user, access: { projectId: opts.projectId, member } };
}

/** What a session check read about a resource's project: the caller's role there. */
export interface ResourceAccess {
  resourceId: string;
  /** Null when the resource does not exist or the caller is not a member of its project. */
  member: { projectId: string; role: ProjectRole } | null;
}

/**
 * authenticate(), and in the same query the user's membership of the project that owns
 * `resourceId` (a uuid: the caller checks its form first). Null when the token or its
 * session does not stand, exactly as authenticate().
 */
export async function authenticateInResource(opts: {
  db: Db;
  config: Config;
  token: string;
  owner: ResourceOwner;
  resourceId: string;
  /** Session checks that stood, kept in this process (session-cache.ts). */
  cache?: SessionCache | undefined;
}): Promise<{ user: AuthUser; access: ResourceAccess } | null> {
  const claims = await verifyAccessToken(opts.config.jwt, opts.token);
  if (!claims) return null;
  const { cache } = opts;
  const kept = cache?.get(claims.sessionId, claims.userId);
  if (kept) {
    // The session as kept; the membership of the resource's project read now, as always.
    const query = perOwner(memberResourceQueries, opts.db, opts.owner, prepareMemberResourceQuery);
    const [member] = await query.execute({ resourceId: opts.resourceId, userId: claims.userId });
    return {
      user: sessionUser(kept, claims.sessionId),
      access: { resourceId: opts.resourceId, member: member ?? null },
    };
  }
  const generation = cache?.generation ?? 0;
  const query = perOwner(sessionResourceQueries, opts.db, opts.owner, prepareSessionResourceQuery);
  const [row] = await query.execute({
    sessionId: claims.sessionId,
    userId: claims.userId,
    resourceId: opts.resourceId,
  });
  if (!row) return null;
  keep(cache, claims, row, generation);
  const member =
    row.memberRole && row.memberProjectId
      ? { projectId: row.memberProjectId, role: row.memberRole }
      : null;
  return {
    user: sessionUser(row, claims.sessionId),
    access: { resourceId: opts.resourceId, member },
  };
}
