import type { DatabaseHandle } from '../../db/client';
import { SESSIONS_CHANNEL } from '../../realtime/connections';
import type { User } from '../users/users.dto';

/** Announced by the users trigger (migration 0028) when a user's email, name, role or activity changes. */
export const USERS_CHANNEL = 'smartspace_users';

/** What a session check read: the user as signed in, and until when the session lasts. */
export interface SessionRow {
  id: string;
  email: string;
  name: string;
  role: User['role'];
  createdAt: Date;
  /** The session's own expiry (ms): past it, the entry is not used. */
  expiresAt: number;
}

/**
 * Session checks that stood, kept in this process for `ttlMs` so a signed-in call needs no
 * query for them. What could make one stand no longer is announced by NOTIFY, on every
 * instance: a session ending (the sessions trigger: logout, logout everywhere, password
 * change or reset, deactivation, refresh reuse) and a change to the user's email, name, role
 * or activity (the users trigger). This instance also forgets at once when it makes those
 * changes itself (`forgetSessions`), so its own next call sees them. A lost notification (the
 * listening connection dropped) is bounded by `ttlMs`; on every (re)connect of that connection
 * everything is forgotten. Only checks that stood are kept: a refused token is checked again
 * every time.
 */
export interface SessionCache {
  /** The entry for this session of this user, if it is fresh. */
  get(sessionId: string, userId: string): SessionRow | null;
  /** The current generation: pass it back to `set` (see there). */
  readonly generation: number;
  /**
   * Keeps a check that stood, unless something was forgotten since `generation` was read: a
   * read that raced an invalidation must not put back what the invalidation removed.
   */
  set(sessionId: string, userId: string, row: SessionRow, generation: number): void;
  forgetSession(sessionId: string): void;
  forgetUser(userId: string): void;
  clear(): void;
  readonly size: number;
  close(): Promise<void>;
}

/** Every open cache of this process, for `forgetSessions` (services run inside transactions). */
const open = new Set<SessionCache>();

/**
 * Forgets, in every session cache of this process, a session or all of a user's: called by
 * the code that ends sessions or changes users, so the next call here sees the change without
 * waiting for its NOTIFY (which still reaches the other instances, and this one again).
 */
export function forgetSessions(target: { sessionId?: string; userId?: string }): void {
  for (const cache of open) {
    if (target.sessionId) cache.forgetSession(target.sessionId);
    if (target.userId) cache.forgetUser(target.userId);
  }
}

interface Entry {
  userId: string;
  row: SessionRow;
  cachedAt: number;
}

export async function createSessionCache(opts: {
  /** 0: no caching (every call checks its session in the database). */
  ttlMs: number;
  maxEntries?: number;
  listen?: DatabaseHandle['listen'];
}): Promise<SessionCache> {
  const maxEntries = opts.maxEntries ?? 10_000;
  const entries = new Map<string, Entry>();
  let generation = 0;

  const forgetSession = (sessionId: string) => {
    generation++;
    entries.delete(sessionId);
  };
  const forgetUser = (userId: string) => {
    generation++;
    for (const [sessionId, e] of entries) if (e.userId === userId) entries.delete(sessionId);
  };
  const clear = () => {
    generation++;
    entries.clear();
  };

  const stops =
    opts.ttlMs > 0 && opts.listen
      ? await Promise.all([
          // Session ids, and API key credentials (another form: never an entry here).
          opts.listen(SESSIONS_CHANNEL, forgetSession, clear),
          opts.listen(USERS_CHANNEL, forgetUser, clear),
        ])
      : [];

  const cache: SessionCache = {
    get(sessionId, userId) {
      if (opts.ttlMs <= 0) return null;
      const e = entries.get(sessionId);
      if (!e) return null;
      const now = Date.now();
      if (e.userId !== userId || now - e.cachedAt >= opts.ttlMs || now >= e.row.expiresAt) {
        entries.delete(sessionId);
        return null;
      }
      return e.row;
    },
    get generation() {
      return generation;
    },
    set(sessionId, userId, row, seen) {
      if (opts.ttlMs <= 0 || seen !== generation) return;
      entries.delete(sessionId);
      if (entries.size >= maxEntries) {
        // Oldest first: Map keeps insertion order.
        const oldest = entries.keys().next().value;
        if (oldest !== undefined) entries.delete(oldest);
      }
      entries.set(sessionId, { userId, row, cachedAt: Date.now() });
    },
    forgetSession,
    forgetUser,
    clear,
    get size() {
      return entries.size;
    },
    async close() {
      open.delete(cache);
      clear();
      await Promise.all(stops.map((stop) => stop()));
    },
  };
  open.add(cache);
  return cache;
}
