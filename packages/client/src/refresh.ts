import type { Session } from '@smartspace/api';

/**
 * Where the client keeps the session between calls: memory by default; pass your own to
 * persist it (localStorage in a browser, a file in a CLI).
 */
export interface SessionStore {
  get(): Session | null | Promise<Session | null>;
  set(session: Session | null): void | Promise<void>;
}

export function memorySessionStore(initial: Session | null = null): SessionStore {
  let current = initial;
  return {
    get: () => current,
    set: (s) => {
      current = s;
    },
  };
}

/**
 * Refreshes at most once at a time: every caller that hits an expired token while a refresh
 * is in flight waits for that one instead of starting its own (which would spend the same
 * refresh token twice and, by design, end the session).
 */
export function createRefresher(opts: {
  store: SessionStore;
  exchange: (refreshToken: string) => Promise<Session>;
  onSessionEnded?: (() => void) | undefined;
}) {
  let inFlight: Promise<Session | null> | null = null;

  async function run(staleAccessToken: string | null): Promise<Session | null> {
    const current = await opts.store.get();
    if (!current) return null;
    // Someone already refreshed since this call was sent: use their result.
    if (staleAccessToken !== null && current.accessToken !== staleAccessToken) return current;
    try {
      const next = await opts.exchange(current.refreshToken);
      await opts.store.set(next);
      return next;
    } catch (err) {
      if (isUnauthorized(err)) {
        await opts.store.set(null);
        opts.onSessionEnded?.();
        return null;
      }
      throw err;
    }
  }

  return {
    /** Returns a fresh session, or null when the session has ended. */
    refresh(staleAccessToken: string | null): Promise<Session | null> {
      inFlight ??= run(staleAccessToken).finally(() => {
        inFlight = null;
      });
      return inFlight;
    },
  };
}

export function isUnauthorized(err: unknown): boolean {
  const data = (err as { data?: { code?: string } } | null)?.data;
  return data?.code === 'UNAUTHORIZED';
}
