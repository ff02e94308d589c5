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

/**
 * Reads by key where callers that arrive while a read of their key is in flight share the next
 * one, issued when it settles. Every caller gets a read that began after it called; a burst of
 * callers for one key costs two reads, not one each.
 */
export function createCoalescedReads<T>(read: (key: string) => Promise<T>) {
  interface Reads {
    inFlight: Promise<T>;
    /** Callers since `inFlight` was issued; their read is issued once it settles. */
    next: Promise<T> | null;
  }
  const byKey = new Map<string, Reads>();

  function issue(key: string): Promise<T> {
    const inFlight = read(key);
    const entry: Reads = { inFlight, next: null };
    byKey.set(key, entry);
    const settled = () => {
      if (byKey.get(key) === entry && entry.next === null) byKey.delete(key);
    };
    inFlight.then(settled, settled);
    return inFlight;
  }

  return {
    get(key: string): Promise<T> {
      const current = byKey.get(key);
      if (!current) return issue(key);
      current.next ??= current.inFlight.then(
        () => issue(key),
        () => issue(key),
      );
      return current.next;
    },

    /** Keys with a read in flight (tests). */
    get size() {
      return byKey.size;
    },
  };
}

const roleReads = new WeakMap<Db, ReturnType<typeof createCoalescedReads<ProjectRole | null>>>();

/**
 * The member's role now, or null when they are not a member (or the project is gone), from a
 * read issued after this call: what a re-check after starting a watch needs. Concurrent
 * callers for one member (a reconnect wave of their subscriptions) share reads.
 */
export function currentRole(
  db: Db,
  projectId: string,
  userId: string,
): Promise<ProjectRole | null> {
  let reads = roleReads.get(db);
  if (!reads) {
    reads = createCoalescedReads(async (key) => {
      const at = key.indexOf(':');
      const [row] = await db
        .select({ role: projectMembers.role })
        .from(projectMembers)
        .where(
          and(
            eq(projectMembers.projectId, key.slice(0, at)),
            eq(projectMembers.userId, key.slice(at + 1)),
          ),
        );
      return row?.role ?? null;
    });
    roleReads.set(db, reads);
  }
  return reads.get(`${projectId}:${userId}`);
}

/** What a live subscription was allowed on: it ends once its member drops below `minRole`. */
export interface AccessGrant {
  projectId: string;
  userId: string;
  minRole: ProjectRole;
}

/** Told (once) when its grant no longer holds. */
export interface AccessWatcher extends AccessGrant {
  onRevoked(): void;
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
  const byProject = new Map<string, Set<AccessWatcher>>();

  function add(w: AccessWatcher) {
    let set = byProject.get(w.projectId);
    if (!set) {
      set = new Set();
      byProject.set(w.projectId, set);
    }
    set.add(w);
  }

  function remove(w: AccessWatcher) {
    const set = byProject.get(w.projectId);
    if (!set?.delete(w)) return;
    if (set.size === 0) byProject.delete(w.projectId);
  }

  return {
    /** Calls `onRevoked` (once) when the grant no longer holds; returns the way to stop. */
    watch(grant: AccessGrant, onRevoked: () => void): () => void {
      const w: AccessWatcher = { ...grant, onRevoked };
      add(w);
      return () => remove(w);
    },

    /**
     * Tells `w` (once) when its grant no longer holds, until deleted: `watch` without a
     * closure of its own, for what every idle subscription holds.
     */
    add,

    delete: remove,

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
