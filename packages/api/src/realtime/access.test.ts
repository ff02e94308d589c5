import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContextInner } from '../context';
import { createCaller } from '../index';
import { createTestApi, failure, type TestApi } from '../testing';
import { createAccessWatch, createCoalescedReads, currentRole } from './access';
import type { SocketLike } from './connections';
import { directStreams, socketStart } from './socket-stream';

describe('access watch', () => {
  const grant = (userId: string, minRole: 'viewer' | 'admin') => ({
    projectId: 'p',
    userId,
    minRole,
  });
  const change = (userId: string | null, role: string | null, projectId = 'p') =>
    JSON.stringify({ projectId, userId, role });

  it('ends exactly the subscriptions the new access no longer allows', () => {
    const watch = createAccessWatch();
    const ended: string[] = [];
    watch.watch(grant('u1', 'admin'), () => ended.push('u1 admin'));
    watch.watch(grant('u1', 'viewer'), () => ended.push('u1 viewer'));
    watch.watch(grant('u2', 'viewer'), () => ended.push('u2 viewer'));

    watch.apply(change('u1', 'owner'));
    watch.apply(change('u1', 'viewer', 'another project'));
    watch.apply('not json');
    watch.apply('{"userId": "u1"}');
    expect(ended).toEqual([]);

    watch.apply(change('u1', 'member'));
    expect(ended).toEqual(['u1 admin']);
    watch.apply(change('u1', null));
    expect(ended).toEqual(['u1 admin', 'u1 viewer']);
    watch.apply(change(null, null));
    expect(ended).toEqual(['u1 admin', 'u1 viewer', 'u2 viewer']);
    expect(watch.size).toBe(0);
  });

  it('a stopped watch is never called', () => {
    const watch = createAccessWatch();
    let called = false;
    const stop = watch.watch(grant('u1', 'viewer'), () => {
      called = true;
    });
    stop();
    watch.apply(change(null, null));
    expect(called).toBe(false);
    expect(watch.size).toBe(0);
  });
});

describe('a subscription whose access ended before its stream started', () => {
  let t: TestApi;
  beforeAll(async () => {
    t = await createTestApi();
  });
  afterAll(() => t.close());

  const socket: SocketLike = {
    readyState: 1,
    close() {},
    send() {},
    on() {},
  };

  it('ends with projects.access_revoked on its first pull', async () => {
    const owner = await t.signUp('Owner');
    const member = await t.signUp('Member');
    const as = t.caller(owner.accessToken);
    const { id: projectId } = await as.projects.create({ name: 'Race' });
    const { id: conversationId } = await as.chat.conversations.create({ projectId });
    await as.projects.members.add({ projectId, email: member.user.email, role: 'viewer' });

    const connection = t.api.connections.add({
      socket,
      ip: '127.0.0.1',
      userId: member.user.id,
      sessionId: null,
      expiresAt: null,
    });
    const ctx = createContextInner(
      t.api.deps,
      { token: member.accessToken, ip: '127.0.0.1', requestId: randomUUID() },
      connection,
    );
    // The procedure checks access and returns its stream; the removal lands (and is
    // announced) before the transport first pulls from it, when nothing watched yet.
    const stream = await createCaller(ctx).chat.onEvent({ conversationId });
    await as.projects.members.remove({ projectId, userId: member.user.id });
    const first = (stream as AsyncGenerator<unknown>).next();
    expect(await failure(first)).toEqual({ code: 'FORBIDDEN', appCode: 'projects.access_revoked' });
    expect(connection?.subscriptions).toBe(0);
    expect(connection?.access.size).toBe(0);
  });
});

describe('coalesced reads', () => {
  it('callers while a read is in flight share the next one, issued after all of them called', async () => {
    let clock = 0;
    const issued: { key: string; at: number; finish: (v: string) => void }[] = [];
    const reads = createCoalescedReads(
      (key) =>
        new Promise<string>((resolve) => {
          issued.push({ key, at: ++clock, finish: resolve });
        }),
    );
    const called: number[] = [];
    const call = (key: string) => {
      called.push(++clock);
      return reads.get(key);
    };
    const first = call('a');
    const others = Array.from({ length: 10 }, () => call('a'));
    const otherKey = call('b');
    expect(issued.map((r) => r.key)).toEqual(['a', 'b']);
    issued[0]?.finish('one');
    expect(await first).toBe('one');
    // The ten queued behind it get one read, issued only now: after each of them called.
    await expect.poll(() => issued.length).toBe(3);
    const second = issued[2] as (typeof issued)[number];
    expect(second.key).toBe('a');
    expect(second.at).toBeGreaterThan(Math.max(...called.slice(1, 11)));
    second.finish('two');
    expect(await Promise.all(others)).toEqual(Array(10).fill('two'));
    issued[1]?.finish('bee');
    expect(await otherKey).toBe('bee');
    await expect.poll(() => reads.size).toBe(0);
  });

  it('a failed read fails its own callers only; those queued behind it get a fresh read', async () => {
    let n = 0;
    const reads = createCoalescedReads(async () => {
      n++;
      await new Promise((r) => setTimeout(r, 10));
      if (n === 1) throw new Error('first read failed');
      return n;
    });
    const first = reads.get('k');
    const queued = [reads.get('k'), reads.get('k')];
    await expect(first).rejects.toThrow('first read failed');
    expect(await Promise.all(queued)).toEqual([2, 2]);
    expect(await reads.get('k')).toBe(3);
  });
});

describe('currentRole, on the database', () => {
  let t: TestApi;
  beforeAll(async () => {
    t = await createTestApi();
  });
  afterAll(() => t.close());

  it('gives every concurrent caller the role, and a caller after a change the new one', async () => {
    const owner = await t.signUp('Owner');
    const member = await t.signUp('Member');
    const as = t.caller(owner.accessToken);
    const { id: projectId } = await as.projects.create({ name: 'Roles' });
    await as.projects.members.add({ projectId, email: member.user.email, role: 'viewer' });
    const { db } = t.api.deps;
    const userId = member.user.id;

    const many = await Promise.all(
      Array.from({ length: 30 }, () => currentRole(db, projectId, userId)),
    );
    expect(many).toEqual(Array(30).fill('viewer'));
    for (const role of ['admin', 'viewer', 'admin'] as const) {
      // A read of the old role may still be in flight when the change commits.
      const inFlight = currentRole(db, projectId, userId);
      await as.projects.members.updateRole({ projectId, userId, role });
      expect(await currentRole(db, projectId, userId)).toBe(role);
      await inFlight;
    }
    await as.projects.members.remove({ projectId, userId });
    expect(await currentRole(db, projectId, userId)).toBeNull();
    expect(await currentRole(db, projectId, randomUUID())).toBeNull();
  });

  it('a socket subscription stopped mid-stream leaves no watch, slot or topic listener', async () => {
    const owner = await t.signUp('Owner');
    const as = t.caller(owner.accessToken);
    const { id: projectId } = await as.projects.create({ name: 'Stop' });
    const { id: conversationId } = await as.chat.conversations.create({ projectId });
    const frames: string[] = [];
    const socket: SocketLike = {
      readyState: 1,
      close() {},
      send(data: string | Buffer) {
        frames.push(String(data));
      },
      on() {},
    };
    const connection = t.api.connections.add({
      socket,
      ip: '127.0.0.1',
      userId: owner.user.id,
      sessionId: null,
      expiresAt: null,
    });
    if (!connection) throw new Error('not registered');
    const ctx = createContextInner(
      t.api.deps,
      { token: owner.accessToken, ip: '127.0.0.1', requestId: randomUUID() },
      connection,
    );
    const stream = (await createCaller(ctx).chat.onEvent({ conversationId })) as AsyncGenerator;
    const ends: unknown[] = [];
    const handed = socketStart(socket, 1, (failure) => ends.push(failure));
    void (stream.next as (start: unknown) => Promise<unknown>)(handed);
    expect(handed.taken).toBe(true);
    const topic = `conversation:${conversationId}`;
    await expect.poll(() => connection.access.size).toBe(1);
    expect(connection.subscriptions).toBe(1);
    expect(directStreams(t.api.deps.bus, topic)).toBe(1);

    await stream.return(undefined);
    expect(ends).toEqual([null]);
    expect(connection.subscriptions).toBe(0);
    expect(connection.access.size).toBe(0);
    expect(directStreams(t.api.deps.bus, topic)).toBe(0);
    await as.chat.send({ conversationId, content: 'after the stop' });
    await new Promise((r) => setTimeout(r, 200));
    expect(frames).toEqual([]);
    t.api.connections.remove(connection);
  });
});
