import { and, eq, ilike, or } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { type Actor, auditedBy } from '../../lib/actor';
import { AppError } from '../../lib/errors';
import { keyset, type Page, toPage } from '../../lib/pagination';
import { recordAudit } from '../audit/audit.service';
import { endSessions } from '../auth/auth.service';
import { forgetSessions } from '../auth/session-cache';
import { toUser, type User } from './users.dto';
import { users } from './users.table';

export async function getUser(opts: { db: Db; userId: string }): Promise<User> {
  const [row] = await opts.db.select().from(users).where(eq(users.id, opts.userId));
  if (!row) throw new AppError('users.not_found', 'No such user');
  return toUser(row);
}

export async function updateProfile(opts: {
  db: Db;
  userId: string;
  name?: string | undefined;
}): Promise<User> {
  if (opts.name === undefined) return getUser(opts);
  const [row] = await opts.db
    .update(users)
    .set({ name: opts.name, updatedAt: new Date() })
    .where(eq(users.id, opts.userId))
    .returning();
  // The session checks kept here hold the name (the users trigger tells the other instances).
  forgetSessions({ userId: opts.userId });
  if (!row) throw new AppError('users.not_found', 'No such user');
  return toUser(row);
}

function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

export async function listUsers(opts: {
  db: Db;
  query?: string | undefined;
  cursor?: string | undefined;
  limit: number;
}): Promise<Page<User & { active: boolean }>> {
  const page = keyset({ at: users.createdAt, id: users.id, cursor: opts.cursor, direction: 'asc' });
  const pattern = opts.query ? `%${escapeLike(opts.query)}%` : undefined;
  const rows = await opts.db
    .select()
    .from(users)
    .where(
      and(
        page.where,
        pattern ? or(ilike(users.email, pattern), ilike(users.name, pattern)) : undefined,
      ),
    )
    .orderBy(...page.orderBy)
    .limit(opts.limit + 1);
  return toPage(
    rows,
    opts.limit,
    (r) => ({ at: r.createdAt, id: r.id }),
    (r) => ({ ...toUser(r), active: r.active }),
  );
}

/** Admins cannot demote or deactivate themselves: that is how a platform loses its last admin. */
function refuseSelf(actorId: string, userId: string) {
  if (actorId === userId) {
    throw new AppError('users.cannot_change_self', 'Ask another admin to change your own account');
  }
}

export async function setRole(opts: {
  db: Db;
  actor: Actor;
  userId: string;
  role: 'user' | 'admin';
}): Promise<User> {
  refuseSelf(opts.actor.userId, opts.userId);
  return opts.db.transaction(async (tx) => {
    const [before] = await tx
      .select({ role: users.role })
      .from(users)
      .where(eq(users.id, opts.userId))
      .for('update');
    const [row] = await tx
      .update(users)
      .set({ role: opts.role, updatedAt: new Date() })
      .where(eq(users.id, opts.userId))
      .returning();
    forgetSessions({ userId: opts.userId });
    if (!before || !row) throw new AppError('users.not_found', 'No such user');
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'users.role_changed',
      target: opts.userId,
      metadata: { from: before.role, to: row.role },
    });
    return toUser(row);
  });
}

export async function setActive(opts: {
  db: Db;
  actor: Actor;
  userId: string;
  active: boolean;
}): Promise<User> {
  refuseSelf(opts.actor.userId, opts.userId);
  return opts.db.transaction(async (tx) => {
    const [row] = await tx
      .update(users)
      .set({ active: opts.active, updatedAt: new Date() })
      .where(eq(users.id, opts.userId))
      .returning();
    forgetSessions({ userId: opts.userId });
    if (!row) throw new AppError('users.not_found', 'No such user');
    const ended = opts.active
      ? 0
      : await endSessions({ db: tx, userId: opts.userId, reason: 'deactivated' });
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: opts.active ? 'users.reactivated' : 'users.deactivated',
      target: opts.userId,
      metadata: opts.active ? {} : { sessionsEnded: ended },
    });
    return toUser(row);
  });
}
