import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContextInner } from '../context';
import { createCaller } from '../index';
import { createTestApi, failure, type TestApi } from '../testing';
import { createAccessWatch } from './access';
import type { SocketLike } from './connections';

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
    once() {},
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
