import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { projectMembers } from '../modules/projects/projects.table';
import { type ProjectRole, roleAtLeast } from '../modules/projects/roles';

/**
 * Access changes announced to every instance, so open subscriptions end when the access that
 * allowed them does. The role travels with the change and
 * notifications arrive in commit order, so each instance decides without a query.
 */
export const ACCESS_CHANNEL = 'smartspace_access';

export interface AccessChange {
  projectId: string;
  /** null: everyone's access to the project ended (it was deleted). */
  userId: string | null;
  /** The member's role from now on; null: no access at all. */
  role: ProjectRole | null;
}

/** Announces `change` when the caller's transaction commits (NOTIFY is transactional). */
export async function announceAccessChange(opts: { db: Db } & AccessChange): Promise<void> {
  const change: AccessChange = { projectId: opts.projectId, userId: opts.userId, role: opts.role };
  await opts.db.execute(sql`select pg_notify(${ACCESS_CHANNEL}, ${JSON.stringify(change)})`);
}

/** The member's role now, or null when they are not a member (or the project is gone). */
export async function currentRole(
  db: Db,
  projectId: string,
  userId: string,
): Promise<ProjectRole | null> {
  const [row] = await db
    .select({ role: projectMembers.role })
    .from(projectMembers)
    .where(and(eq(projectMembers.projectId, projectId), eq(projectMembers.userId, userId)));
  return row?.role ?? null;
}

/** What a live subscription was allowed on: it ends once its member drops below `minRole`. */
export interface AccessGrant {
  projectId: string;
  userId: string;
  minRole: ProjectRole;
}

interface Watcher extends AccessGrant {
  onRevoked: () => void;
}

function parseChange(payload: string): AccessChange | null {
  try {
    const c = JSON.parse(payload) as Partial<AccessChange> | null;
    if (typeof c?.projectId !== 'string') return null;
    return { projectId: c.projectId, userId: c.userId ?? null, role: c.role ?? null };
  } catch {
    return null;
  }
}

/** This instance's live project-scoped subscriptions, by project. */
export function createAccessWatch() {
  const byProject = new Map<string, Set<Watcher>>();

  return {
    /** Calls `onRevoked` (once) when the grant no longer holds; returns the way to stop. */
    watch(grant: AccessGrant, onRevoked: () => void): () => void {
      const w: Watcher = { ...grant, onRevoked };
      const set = byProject.get(grant.projectId) ?? new Set();
      set.add(w);
      byProject.set(grant.projectId, set);
      return () => {
        set.delete(w);
        if (set.size === 0 && byProject.get(grant.projectId) === set) {
          byProject.delete(grant.projectId);
        }
      };
    },

    /** Applies a change received on ACCESS_CHANNEL. */
    apply(payload: string): void {
      const change = parseChange(payload);
      const set = change && byProject.get(change.projectId);
      if (!change || !set) return;
      for (const w of [...set]) {
        if (change.userId !== null && change.userId !== w.userId) continue;
        if (change.role !== null && roleAtLeast(change.role, w.minRole)) continue;
        set.delete(w);
        w.onRevoked();
      }
      if (set.size === 0) byProject.delete(change.projectId);
    },

    /** Live watched subscriptions (for tests and metrics). */
    get size() {
      let n = 0;
      for (const set of byProject.values()) n += set.size;
      return n;
    },
  };
}

export type AccessWatch = ReturnType<typeof createAccessWatch>;
