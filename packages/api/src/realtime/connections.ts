import type { DatabaseHandle } from '../db/client';
import { ACCESS_CHANNEL, type AccessWatch, createAccessWatch } from './access';
import { observeStarts } from './socket-stream';

/** Close codes sent to clients; 4xxx are application-defined (RFC 6455 §7.4.2). */
export const CloseCode = {
  sessionEnded: 4001,
  tokenExpired: 4002,
  authTimeout: 4003,
  tooManyConnections: 4008,
  serviceRestart: 1012,
} as const;

const WS_CLOSED = 3;

/** The bits of a WebSocket the registry needs. */
export interface SocketLike {
  readonly readyState: number;
  close(code: number, reason: string): void;
  send(data: string): void;
  /** A Buffer with `binary: false` goes out as a text frame (ws), without a copy per socket. */
  send(data: Buffer, options: { binary: boolean }): void;
  once(event: 'close', listener: () => void): unknown;
}

export interface SocketConnection {
  /** Unique within this process. */
  id: string;
  /** Whose caps it counts against: the user, or `key:<id>` for a project API key. */
  userId: string | null;
  /** What ends it when revoked: the session, or `key:<id>` for a project API key. */
  sessionId: string | null;
  ip: string;
  /** When the socket was first registered (its authentication deadline counts from here). */
  openedAt: number;
  subscriptions: number;
  maxSubscriptions: number;
  socket: SocketLike;
  /** Ends this instance's subscriptions whose project access ends. */
  access: AccessWatch;
}

export interface ConnectionLimits {
  perUser: number;
  subscriptionsPerConnection: number;
  /**
   * Sockets without a valid token one address may hold past their handshake grace;
   * more are closed.
   */
  anonymousPerIp: number;
  /** Such a socket is closed this long after it opened. */
  authTimeoutMs: number;
}

export const SESSIONS_CHANNEL = 'smartspace_sessions';

let lastConnectionId = 0;

/**
 * How long a new socket has to present a valid token before it counts against its address's
 * cap: a burst of clients signing in at once (a restart, many users behind one NAT) is never
 * refused, while sockets that linger without one are held to the cap.
 */
export const HANDSHAKE_GRACE_MS = 2_000;

function counter() {
  const counts = new Map<string, number>();
  return {
    get: (key: string) => counts.get(key) ?? 0,
    inc: (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1),
    dec(key: string) {
      const n = (counts.get(key) ?? 1) - 1;
      if (n > 0) counts.set(key, n);
      else counts.delete(key);
    },
  };
}

/**
 * The open sockets of this process, by user and by session: enforces connection caps and
 * closes a session's sockets the moment it ends (on any instance, via NOTIFY) or its access
 * token expires; an API key's sockets likewise when it is revoked or expires. The client then reconnects with fresh connectionParams.
 *
 * A socket without a valid token (every socket, until its connectionParams arrive) is held
 * `authTimeoutMs` at most, and one still without a token after HANDSHAKE_GRACE_MS is closed
 * if its address then holds more than `anonymousPerIp` such sockets. The first-party client
 * never needs one (it signs in over HTTP); the time lets a call on it answer UNAUTHORIZED
 * before the close, so the client does not loop reconnecting.
 */
export async function createConnectionRegistry(handle: DatabaseHandle, limits: ConnectionLimits) {
  const bySocket = new Map<SocketLike, SocketConnection>();
  const bySession = new Map<string, Set<SocketConnection>>();
  const perUser = counter();
  const anonymousByIp = new Map<string, Set<SocketConnection>>();
  const timers = new Map<SocketConnection, NodeJS.Timeout>();
  const access = createAccessWatch();

  function closeSession(sessionId: string, code: number, reason: string) {
    for (const c of bySession.get(sessionId) ?? []) c.socket.close(code, reason);
  }

  function remove(conn: SocketConnection) {
    if (bySocket.get(conn.socket) !== conn) return;
    bySocket.delete(conn.socket);
    clearTimeout(timers.get(conn));
    timers.delete(conn);
    if (conn.userId) perUser.dec(conn.userId);
    else {
      const set = anonymousByIp.get(conn.ip);
      set?.delete(conn);
      if (set?.size === 0) anonymousByIp.delete(conn.ip);
    }
    if (conn.sessionId) {
      const set = bySession.get(conn.sessionId);
      set?.delete(conn);
      if (set?.size === 0) bySession.delete(conn.sessionId);
    }
  }

  function at(conn: SocketConnection, time: number, run: () => void) {
    clearTimeout(timers.get(conn));
    const timer = setTimeout(run, Math.max(0, time - Date.now()));
    timer.unref();
    timers.set(conn, timer);
  }

  /** Past the handshake grace, fits the address's cap or goes; then waits out its deadline. */
  function holdAnonymous(conn: SocketConnection) {
    const set = anonymousByIp.get(conn.ip) ?? new Set();
    set.add(conn);
    anonymousByIp.set(conn.ip, set);
    const deadline = conn.openedAt + limits.authTimeoutMs;
    at(conn, Math.min(conn.openedAt + HANDSHAKE_GRACE_MS, deadline), () => {
      if ((anonymousByIp.get(conn.ip)?.size ?? 0) > limits.anonymousPerIp) {
        // Removed at once, so the sockets checked next in this tick see the lower count.
        remove(conn);
        conn.socket.close(CloseCode.tooManyConnections, 'too many unauthenticated connections');
        return;
      }
      at(conn, deadline, () => conn.socket.close(CloseCode.authTimeout, 'not signed in'));
    });
  }

  const unlistenSessions = await handle.listen(SESSIONS_CHANNEL, (sessionId) =>
    closeSession(sessionId, CloseCode.sessionEnded, 'session ended'),
  );
  const unlistenAccess = await handle.listen(ACCESS_CHANNEL, (payload) => access.apply(payload));

  return {
    /**
     * Registers a socket, or registers it again once its connectionParams are known (it is
     * registered without a token when it opens). Past the per-user cap, closes it (4008) and
     * returns null.
     */
    add(opts: {
      socket: SocketLike;
      ip: string;
      userId: string | null;
      sessionId: string | null;
      expiresAt: Date | null;
    }): SocketConnection | null {
      if (opts.socket.readyState === WS_CLOSED) return null;
      const previous = bySocket.get(opts.socket);
      if (previous) remove(previous);
      if (opts.userId && perUser.get(opts.userId) >= limits.perUser) {
        opts.socket.close(CloseCode.tooManyConnections, 'too many connections');
        return null;
      }
      const conn: SocketConnection = {
        // Not randomUUID(): it builds its text by concatenation, a rope of ~20 strings that
        // every idle socket would hold.
        id: String(++lastConnectionId),
        userId: opts.userId,
        sessionId: opts.sessionId,
        ip: opts.ip,
        openedAt: previous?.openedAt ?? Date.now(),
        subscriptions: 0,
        maxSubscriptions: limits.subscriptionsPerConnection,
        socket: opts.socket,
        access,
      };
      bySocket.set(opts.socket, conn);
      if (opts.userId) perUser.inc(opts.userId);
      else holdAnonymous(conn);
      if (opts.sessionId) {
        const set = bySession.get(opts.sessionId) ?? new Set();
        set.add(conn);
        bySession.set(opts.sessionId, set);
      }
      if (opts.userId && opts.expiresAt) {
        at(conn, opts.expiresAt.getTime(), () =>
          conn.socket.close(CloseCode.tokenExpired, 'token expired'),
        );
      }
      if (!previous) {
        observeStarts(opts.socket);
        opts.socket.once('close', () => {
          const current = bySocket.get(opts.socket);
          if (current) remove(current);
        });
      }
      return conn;
    },

    remove,

    get size() {
      return bySocket.size;
    },

    /** Open subscriptions across this instance's sockets (metrics read it). */
    subscriptionCount() {
      let n = 0;
      for (const c of bySocket.values()) n += c.subscriptions;
      return n;
    },

    /** Asks every client to reconnect (elsewhere) using tRPC's reconnect notification. */
    announceRestart() {
      const msg = JSON.stringify({ id: null, method: 'reconnect' });
      for (const c of bySocket.values()) {
        try {
          c.socket.send(msg);
        } catch {
          // already closing
        }
      }
    },

    closeAll(code: number, reason: string) {
      for (const c of bySocket.values()) c.socket.close(code, reason);
    },

    async close() {
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      await unlistenSessions();
      await unlistenAccess();
    },
  };
}

export type ConnectionRegistry = Awaited<ReturnType<typeof createConnectionRegistry>>;
