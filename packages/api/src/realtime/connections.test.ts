import { EventEmitter } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../db/client';
import { createTestDatabase } from '../testing';
import {
  CloseCode,
  type ConnectionRegistry,
  createConnectionRegistry,
  createDeadlines,
  DEADLINE_SLICE_MS,
  type DeadlineKind,
  type SocketConnection,
  type SocketLike,
} from './connections';

/** A socket as ws behaves: close() starts closing, and 'close' follows. */
class FakeSocket extends EventEmitter implements SocketLike {
  readyState = 1;
  readonly closes: { code: number; reason: string }[] = [];

  close(code: number, reason: string) {
    this.closes.push({ code, reason });
    if (this.readyState !== 1) return;
    this.readyState = 3;
    setImmediate(() => this.emit('close'));
  }

  /** The client went away. */
  drop() {
    this.readyState = 3;
    this.emit('close');
  }

  send() {}
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the connection registry', () => {
  let handle: DatabaseHandle;
  let registry: ConnectionRegistry;
  beforeAll(async () => {
    handle = await createTestDatabase();
    registry = await createConnectionRegistry(handle, {
      perUser: 100,
      subscriptionsPerConnection: 10,
      anonymousPerIp: 100,
      authTimeoutMs: 300,
    });
  });
  afterAll(async () => {
    await registry.close();
    await handle.close();
  });

  it('closes a signed-in socket with 4002 when its token expires, and forgets it', async () => {
    const socket = new FakeSocket();
    const expiresAt = new Date(Date.now() + 150);
    const conn = registry.add({
      socket,
      ip: '127.0.0.1',
      userId: 'expiring-user',
      sessionId: 'expiring-session',
      expiresAt,
    });
    expect(conn).not.toBeNull();
    expect(registry.size).toBe(1);
    await expect
      .poll(() => socket.closes)
      .toEqual([{ code: CloseCode.tokenExpired, reason: 'token expired' }]);
    // Not before its time, and within a slice (and a timer's lateness) after it.
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt.getTime());
    await expect.poll(() => registry.size).toBe(0);
  });

  it('a socket that closes first is forgotten, and its deadline never closes it', async () => {
    const anonymous = new FakeSocket();
    const signedIn = new FakeSocket();
    registry.add({
      socket: anonymous,
      ip: '127.0.0.1',
      userId: null,
      sessionId: null,
      expiresAt: null,
    });
    registry.add({
      socket: signedIn,
      ip: '127.0.0.1',
      userId: 'u',
      sessionId: 's',
      expiresAt: new Date(Date.now() + 200),
    });
    expect(registry.size).toBe(2);
    anonymous.drop();
    signedIn.drop();
    expect(registry.size).toBe(0);
    await sleep(500);
    expect(anonymous.closes).toEqual([]);
    expect(signedIn.closes).toEqual([]);
  });

  it('registered again with its token, a socket loses its authentication deadline', async () => {
    const socket = new FakeSocket();
    registry.add({ socket, ip: '127.0.0.1', userId: null, sessionId: null, expiresAt: null });
    const conn = registry.add({
      socket,
      ip: '127.0.0.1',
      userId: 'later',
      sessionId: 'later-session',
      expiresAt: null,
    });
    expect(conn?.deadline).toBeNull();
    await sleep(500);
    expect(socket.closes).toEqual([]);
    expect(registry.size).toBe(1);
    socket.drop();
    expect(registry.size).toBe(0);
  });

  it('a socket that never signs in is closed with 4003 after authTimeoutMs', async () => {
    const socket = new FakeSocket();
    const opened = Date.now();
    registry.add({ socket, ip: '127.0.0.1', userId: null, sessionId: null, expiresAt: null });
    await expect
      .poll(() => socket.closes)
      .toEqual([{ code: CloseCode.authTimeout, reason: 'not signed in' }]);
    expect(Date.now() - opened).toBeGreaterThanOrEqual(300);
  });
});

describe('deadlines', () => {
  const conn = () => ({ deadline: null, deadlineAt: 0 }) as unknown as SocketConnection;

  it('those in one slice share one timer; a cleared or moved one is not run there', async () => {
    const ran: [SocketConnection, DeadlineKind, number][] = [];
    const deadlines = createDeadlines((c, kind) => ran.push([c, kind, Date.now()]));
    const at = Date.now() + 100;
    const conns = Array.from({ length: 100 }, conn);
    for (const c of conns) deadlines.set(c, 'expiry', at);
    expect(deadlines.size).toBe(1);
    const [cleared, moved] = conns as [SocketConnection, SocketConnection];
    deadlines.clear(cleared);
    deadlines.set(moved, 'auth', at + 10 * DEADLINE_SLICE_MS);
    expect(deadlines.size).toBe(2);

    await expect.poll(() => ran.length).toBe(98);
    expect(ran.every(([, kind, time]) => kind === 'expiry' && time >= at)).toBe(true);
    expect(ran.some(([c]) => c === cleared || c === moved)).toBe(false);
    expect(conns.filter((c) => c !== moved).every((c) => c.deadline === null)).toBe(true);
    expect(deadlines.size).toBe(1);

    await expect.poll(() => ran.length).toBe(99);
    expect(ran.at(-1)?.[0]).toBe(moved);
    expect(ran.at(-1)?.[1]).toBe('auth');
    expect(ran.at(-1)?.[2]).toBeGreaterThanOrEqual(at + 10 * DEADLINE_SLICE_MS);
    expect(deadlines.size).toBe(0);
    expect(cleared.deadline).toBeNull();
  });

  it('stop() drops every timer', async () => {
    const ran: SocketConnection[] = [];
    const deadlines = createDeadlines((c) => ran.push(c));
    deadlines.set(conn(), 'grace', Date.now() + 50);
    deadlines.set(conn(), 'grace', Date.now() + 500);
    deadlines.stop();
    expect(deadlines.size).toBe(0);
    await sleep(150);
    expect(ran).toEqual([]);
  });
});
