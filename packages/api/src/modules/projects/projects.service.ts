import { and, count, eq, sql } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { type Actor, auditedBy } from '../../lib/actor';
import { AppError } from '../../lib/errors';
import { keyset, type Page, toPage } from '../../lib/pagination';
import { announceAccessChange } from '../../realtime/access';
import { recordAudit } from '../audit/audit.service';
import { users } from '../users/users.table';
import { type Member, type Project, toProject } from './projects.dto';
import { type ProjectRole, type ProjectRow, projectMembers, projects } from './projects.table';

export interface Membership {
  projectId: string;
  userId: string;
  role: ProjectRole;
}

const notFound = () => new AppError('projects.not_found', 'No such project');

/** The caller's membership; a project they are not in does not exist, as far as they know. */
export async function requireMembership(opts: {
  db: Db;
  projectId: string;
  userId: string;
}): Promise<Membership> {
  const [row] = await opts.db
    .select({ role: projectMembers.role })
    .from(projectMembers)
    .where(
      and(eq(projectMembers.projectId, opts.projectId), eq(projectMembers.userId, opts.userId)),
    );
  if (!row) throw notFound();
  return { projectId: opts.projectId, userId: opts.userId, role: row.role };
}

export async function listProjects(opts: {
  db: Db;
  userId: string;
  /** Just this project, seen with this role (a project API key's view). */
  only?: { projectId: string; role: ProjectRole } | undefined;
  cursor?: string | undefined;
  limit: number;
}): Promise<Page<Project & { myRole: ProjectRole }>> {
  const page = keyset({
    at: projects.createdAt,
    id: projects.id,
    cursor: opts.cursor,
    direction: 'desc',
  });
  const rows = await opts.db
    .select({ project: projects, myRole: projectMembers.role })
    .from(projectMembers)
    .innerJoin(projects, eq(projects.id, projectMembers.projectId))
    .where(
      and(
        eq(projectMembers.userId, opts.userId),
        opts.only ? eq(projects.id, opts.only.projectId) : undefined,
        page.where,
      ),
    )
    .orderBy(...page.orderBy)
    .limit(opts.limit + 1);
  return toPage(
    rows,
    opts.limit,
    (r) => ({ at: r.project.createdAt, id: r.project.id }),
    (r) => ({ ...toProject(r.project), myRole: opts.only?.role ?? r.myRole }),
  );
}

export async function createProject(opts: {
  db: Db;
  actor: Actor;
  name: string;
  description?: string | undefined;
}): Promise<Project> {
  return opts.db.transaction(async (tx) => {
    const [row] = await tx
      .insert(projects)
      .values({ name: opts.name, description: opts.description ?? null })
      .returning();
    if (!row) throw new Error('insert returned no row');
    await tx
      .insert(projectMembers)
      .values({ projectId: row.id, userId: opts.actor.userId, role: 'owner' });
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'projects.created',
      projectId: row.id,
      target: row.id,
      metadata: { name: row.name },
    });
    return toProject(row);
  });
}

export async function getProject(opts: {
  db: Db;
  membership: Membership;
  /** The row, when the caller's authorization already read it in the same query. */
  row?: ProjectRow | undefined;
}): Promise<Project & { myRole: ProjectRole }> {
  const [row] = opts.row
    ? [opts.row]
    : await opts.db.select().from(projects).where(eq(projects.id, opts.membership.projectId));
  if (!row) throw notFound();
  return { ...toProject(row), myRole: opts.membership.role };
}

export async function updateProject(opts: {
  db: Db;
  actor: Actor;
  projectId: string;
  name?: string | undefined;
  description?: string | null | undefined;
}): Promise<Project> {
  const patch: Partial<typeof projects.$inferInsert> = { updatedAt: new Date() };
  if (opts.name !== undefined) patch.name = opts.name;
  if (opts.description !== undefined) patch.description = opts.description;
  return opts.db.transaction(async (tx) => {
    const [row] = await tx
      .update(projects)
      .set(patch)
      .where(eq(projects.id, opts.projectId))
      .returning();
    if (!row) throw notFound();
    // Which fields changed, and the new name; descriptions can be long and stay out.
    const changed = (['name', 'description'] as const).filter((f) => opts[f] !== undefined);
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'projects.updated',
      projectId: row.id,
      target: row.id,
      metadata: { fields: changed, ...(opts.name !== undefined ? { name: row.name } : {}) },
    });
    return toProject(row);
  });
}

export async function deleteProject(opts: {
  db: Db;
  actor: Actor;
  projectId: string;
}): Promise<void> {
  await opts.db.transaction(async (tx) => {
    const deleted = await tx
      .delete(projects)
      .where(eq(projects.id, opts.projectId))
      .returning({ name: projects.name });
    if (deleted.length === 0) return;
    // Open subscriptions to it end on every instance once this commits.
    await announceAccessChange({ db: tx, projectId: opts.projectId, userId: null, role: null });
    // The project's rows go with it; its audit events stay (no foreign key).
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'projects.deleted',
      projectId: opts.projectId,
      target: opts.projectId,
      metadata: { name: deleted[0]?.name ?? null },
    });
  });
}

export async function listMembers(opts: { db: Db; projectId: string }): Promise<Member[]> {
  return opts.db
    .select({ userId: users.id, email: users.email, name: users.name, role: projectMembers.role })
    .from(projectMembers)
    .innerJoin(users, eq(users.id, projectMembers.userId))
    .where(eq(projectMembers.projectId, opts.projectId))
    .orderBy(projectMembers.createdAt, users.id);
}

function requireOwnerFor(membership: Membership, ...roles: (ProjectRole | undefined)[]) {
  if (roles.includes('owner') && membership.role !== 'owner') {
    throw new AppError('projects.owner_required', 'Only an owner may grant or take the owner role');
  }
}

/**
 * Membership changes lock the project row first, so two concurrent changes cannot both see
 * "another owner remains" and leave the project with none.
 */
async function lockProject(tx: Db, projectId: string) {
  await tx.execute(sql`select 1 from ${projects} where ${projects.id} = ${projectId} for update`);
}

async function targetMember(tx: Db, projectId: string, userId: string): Promise<Member> {
  const [row] = await tx
    .select({ userId: users.id, email: users.email, name: users.name, role: projectMembers.role })
    .from(projectMembers)
    .innerJoin(users, eq(users.id, projectMembers.userId))
    .where(and(eq(projectMembers.projectId, projectId), eq(projectMembers.userId, userId)));
  if (!row)
    throw new AppError('projects.member_not_found', 'That user is not a member of this project');
  return row;
}

async function ensureAnotherOwner(tx: Db, projectId: string) {
  const [row] = await tx
    .select({ n: count() })
    .from(projectMembers)
    .where(and(eq(projectMembers.projectId, projectId), eq(projectMembers.role, 'owner')));
  if ((row?.n ?? 0) <= 1) {
    throw new AppError('projects.last_owner', 'A project must keep at least one owner');
  }
}

export async function addMember(opts: {
  db: Db;
  /** The caller's membership, which decides what they may grant. */
  membership: Membership;
  actor: Actor;
  email: string;
  role: ProjectRole;
}): Promise<Member> {
  requireOwnerFor(opts.membership, opts.role);
  const projectId = opts.membership.projectId;
  return opts.db.transaction(async (tx) => {
    const [user] = await tx
      .select({ id: users.id, email: users.email, name: users.name })
      .from(users)
      .where(eq(users.email, opts.email.trim().toLowerCase()));
    if (!user) throw new AppError('users.not_found', 'No user has that email');
    const inserted = await tx
      .insert(projectMembers)
      .values({ projectId, userId: user.id, role: opts.role })
      .onConflictDoNothing()
      .returning({ userId: projectMembers.userId });
    if (inserted.length === 0) {
      throw new AppError('projects.member_exists', 'That user is already a member');
    }
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'projects.member_added',
      projectId,
      target: user.id,
      metadata: { role: opts.role },
    });
    return { userId: user.id, email: user.email, name: user.name, role: opts.role };
  });
}

export async function updateMemberRole(opts: {
  db: Db;
  membership: Membership;
  actor: Actor;
  userId: string;
  role: ProjectRole;
}): Promise<Member> {
  const projectId = opts.membership.projectId;
  return opts.db.transaction(async (tx) => {
    await lockProject(tx, projectId);
    const target = await targetMember(tx, projectId, opts.userId);
    requireOwnerFor(opts.membership, target.role, opts.role);
    if (target.role === opts.role) return target;
    if (target.role === 'owner') await ensureAnotherOwner(tx, projectId);
    await tx
      .update(projectMembers)
      .set({ role: opts.role })
      .where(and(eq(projectMembers.projectId, projectId), eq(projectMembers.userId, opts.userId)));
    // Subscriptions needing more than the new role end on every instance once this commits.
    await announceAccessChange({ db: tx, projectId, userId: opts.userId, role: opts.role });
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'projects.member_role_changed',
      projectId,
      target: opts.userId,
      metadata: { from: target.role, to: opts.role },
    });
    return { ...target, role: opts.role };
  });
}

export async function removeMember(opts: {
  db: Db;
  membership: Membership;
  actor: Actor;
  userId: string;
}): Promise<void> {
  const projectId = opts.membership.projectId;
  await opts.db.transaction(async (tx) => {
    await lockProject(tx, projectId);
    const target = await targetMember(tx, projectId, opts.userId);
    requireOwnerFor(opts.membership, target.role);
    if (target.role === 'owner') await ensureAnotherOwner(tx, projectId);
    await tx
      .delete(projectMembers)
      .where(and(eq(projectMembers.projectId, projectId), eq(projectMembers.userId, opts.userId)));
    await announceAccessChange({ db: tx, projectId, userId: opts.userId, role: null });
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'projects.member_removed',
      projectId,
      target: opts.userId,
      metadata: { role: target.role },
    });
  });
}
