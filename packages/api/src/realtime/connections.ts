import { randomUUID } from 'node:crypto';
import type { DatabaseHandle } from '../db/client';

/** Close codes sent to clients; 4xxx are application-defined (RFC 6455 §7.4.2). */
export const CloseCode = {
  sessionEnded: 4001,
  tokenExpired: 4002,
  tooManyConnections: 4008,
  serviceRestart: 1012,
} as const;

/** The bits of a WebSocket the registry needs. */
export interface SocketLike {
  close(code: number, reason: string): void;
  send(data: string): void;
  once(event: 'close', listener: () => void): unknown;
}

export interface SocketConnection {
  id: string;
  userId: string | null;
  sessionId: string | null;
  subscriptions: number;
  maxSubscriptions: number;
  socket: SocketLike;
}

export const SESSIONS_CHANNEL = 'smartspace_sessions';

/**
 * The open sockets of this process, by user and by session: enforces connection caps and
 * closes a session's sockets the moment it ends (on any instance, via NOTIFY) or its access
 * token expires. The client then reconnects with fresh connectionParams.
 */
export async function createConnectionRegistry(
  handle: DatabaseHandle,
  limits: { perUser: number; subscriptionsPerConnection: number },
) {
  const all = new Set<SocketConnection>();
  const bySession = new Map<string, Set<SocketConnection>>();
  const perUser = new Map<string, number>();
  const timers = new Map<SocketConnection, NodeJS.Timeout>();

  function closeSession(sessionId: string, code: number, reason: string) {
    for (const c of bySession.get(sessionId) ?? []) c.socket.close(code, reason);
  }

  function remove(conn: SocketConnection) {
    if (!all.delete(conn)) return;
    clearTimeout(timers.get(conn));
    timers.delete(conn);
    if (conn.userId) {
      const n = (perUser.get(conn.userId) ?? 1) - 1;
      if (n > 0) perUser.set(conn.userId, n);
      else perUser.delete(conn.userId);
    }
    if (conn.sessionId) {
      const set = bySession.get(conn.sessionId);
      set?.delete(conn);
      if (set?.size === 0) bySession.delete(conn.sessionId);
    }
  }

  const unlisten = await handle.listen(SESSIONS_CHANNEL, (sessionId) =>
    closeSession(sessionId, CloseCode.sessionEnded, 'session ended'),
  );

  return {
    /**
     * Registers a socket; null when the user already has `perUser` sockets open (the
     * caller then closes it). Anonymous sockets are tracked but not capped per user.
     */
    add(opts: {
      socket: SocketLike;
      userId: string | null;
      sessionId: string | null;
      expiresAt: Date | null;
    }): SocketConnection | null {
      if (opts.userId && (perUser.get(opts.userId) ?? 0) >= limits.perUser) return null;
      const conn: SocketConnection = {
        id: randomUUID(),
        userId: opts.userId,
        sessionId: opts.sessionId,
        subscriptions: 0,
        maxSubscriptions: limits.subscriptionsPerConnection,
        socket: opts.socket,
      };
      all.add(conn);
      if (opts.userId) perUser.set(opts.userId, (perUser.get(opts.userId) ?? 0) + 1);
      if (opts.sessionId) {
        const set = bySession.get(opts.sessionId) ?? new Set();
        set.add(conn);
        bySession.set(opts.sessionId, set);
      }
      if (opts.expiresAt) {
        const ms = Math.max(0, opts.expiresAt.getTime() - Date.now());
        const timer = setTimeout(
          () => conn.socket.close(CloseCode.tokenExpired, 'token expired'),
          ms,
        );
        timer.unref();
        timers.set(conn, timer);
      }
      opts.socket.once('close', () => remove(conn));
      return conn;
    },

    remove,

    get size() {
      return all.size;
    },

    /** Asks every client to reconnect (elsewhere) using tRPC's reconnect notification. */
    announceRestart() {
      const msg = JSON.stringify({ id: null, method: 'reconnect' });
      for (const c of all) {
        try {
          c.socket.send(msg);
        } catch {
          // already closing
        }
      }
    },

    closeAll(code: number, reason: string) {
      for (const c of all) c.socket.close(code, reason);
    },

    async close() {
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      await unlisten();
    },
  };
}

export type ConnectionRegistry = Awaited<ReturnType<typeof createConnectionRegistry>>;
