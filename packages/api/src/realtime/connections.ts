import type { DatabaseHandle } from '../db/client';
import { ACCESS_CHANNEL, type AccessWatch, createAccessWatch } from './access';

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
  /** Called with the socket as `this` (one listener serves every socket). */
  on(event: 'close', listener: (this: SocketLike) => void): unknown;
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
  /** What happens to it next, unless it closes first; null: nothing. */
  deadline: DeadlineKind | null;
  /** When (ms since the epoch); the bucket it waits in is derived from it. */
  deadlineAt: number;
}

/** The handshake grace's check, the authentication timeout, the token's expiry. */
export type DeadlineKind = 'grace' | 'auth' | 'expiry';

/** Deadlines are served this late at most; those in the same slice share one timer. */
export const DEADLINE_SLICE_MS = 50;

/**
 * Every socket's next deadline, in 50 ms buckets with one timer each. A timer and its closure
 * per socket was a few hundred bytes every idle socket held; sockets opened or signed in
 * together (a reconnect wave, one token on many tabs) share a bucket, and a bucket costs a Set.
 */
export function createDeadlines(run: (conn: SocketConnection, kind: DeadlineKind) => void) {
  const buckets = new Map<number, { conns: Set<SocketConnection>; timer: NodeJS.Timeout }>();

  function clear(conn: SocketConnection) {
    if (conn.deadline === null) return;
    const slot = Math.ceil(conn.deadlineAt / DEADLINE_SLICE_MS);
    conn.deadline = null;
    const bucket = buckets.get(slot);
    if (!bucket) return;
    bucket.conns.delete(conn);
    if (bucket.conns.size === 0) {
      clearTimeout(bucket.timer);
      buckets.delete(slot);
    }
  }

  return {
    /** Replaces the connection's deadline: `run(conn)` once `time` has come. */
    set(conn: SocketConnection, kind: DeadlineKind, time: number) {
      clear(conn);
      conn.deadline = kind;
      conn.deadlineAt = time;
      const slot = Math.ceil(time / DEADLINE_SLICE_MS);
      let bucket = buckets.get(slot);
      if (!bucket) {
        const conns = new Set<SocketConnection>();
        const due = slot * DEADLINE_SLICE_MS;
        const arm = () => setTimeout(fire, Math.max(0, due - Date.now())).unref();
        const fire = () => {
          // A timer runs on the event loop's clock, which may lag the wall clock by a
          // millisecond or so: one that comes early waits out the rest.
          if (Date.now() < due) {
            created.timer = arm();
            return;
          }
          buckets.delete(slot);
          for (const c of conns) {
            // Moved to another deadline meanwhile: that one's bucket serves it.
            const kind = c.deadline;
            if (kind === null || Math.ceil(c.deadlineAt / DEADLINE_SLICE_MS) !== slot) continue;
            c.deadline = null;
            run(c, kind);
          }
        };
        const created = { conns, timer: arm() };
        bucket = created;
        buckets.set(slot, bucket);
      }
      bucket.conns.add(conn);
    },

    clear,

    /** Buckets waiting (tests). */
    get size() {
      return buckets.size;
    },

    stop() {
      for (const b of buckets.values()) clearTimeout(b.timer);
      buckets.clear();
    },
  };
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
  const deadlines = createDeadlines(due);
  const access = createAccessWatch();

  function closeSession(sessionId: string, code: number, reason: string) {
    for (const c of bySession.get(sessionId) ?? []) c.socket.close(code, reason);
  }

  function remove(conn: SocketConnection) {
    if (bySocket.get(conn.socket) !== conn) return;
    bySocket.delete(conn.socket);
    deadlines.clear(conn);
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

  /** What a connection's deadline does when it comes. */
  function due(conn: SocketConnection, kind: DeadlineKind) {
    switch (kind) {
      case 'grace':
        if ((anonymousByIp.get(conn.ip)?.size ?? 0) > limits.anonymousPerIp) {
          // Removed at once, so the sockets checked next in this tick see the lower count.
          remove(conn);
          conn.socket.close(CloseCode.tooManyConnections, 'too many unauthenticated connections');
          return;
        }
        deadlines.set(conn, 'auth', conn.openedAt + limits.authTimeoutMs);
        return;
      case 'auth':
        conn.socket.close(CloseCode.authTimeout, 'not signed in');
        return;
      case 'expiry':
        conn.socket.close(CloseCode.tokenExpired, 'token expired');
        return;
    }
  }

  /** Past the handshake grace, fits the address's cap or goes; then waits out its deadline. */
  function holdAnonymous(conn: SocketConnection) {
    const set = anonymousByIp.get(conn.ip) ?? new Set();
    set.add(conn);
    anonymousByIp.set(conn.ip, set);
    const deadline = conn.openedAt + limits.authTimeoutMs;
    deadlines.set(conn, 'grace', Math.min(conn.openedAt + HANDSHAKE_GRACE_MS, deadline));
  }

  /** Every socket's close ends its registration (shared: `this` is the socket). */
  function onSocketClose(this: SocketLike) {
    const current = bySocket.get(this);
    if (current) remove(current);
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
        deadline: null,
        deadlineAt: 0,
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
        deadlines.set(conn, 'expiry', opts.expiresAt.getTime());
      }
      if (!previous) opts.socket.on('close', onSocketClose);
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
      deadlines.stop();
      await unlistenSessions();
      await unlistenAccess();
    },
  };
}

export type ConnectionRegistry = Awaited<ReturnType<typeof createConnectionRegistry>>;
