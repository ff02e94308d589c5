import { closeClient } from '@smartspace/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Cluster,
  type Instance,
  multiInstanceEnabled,
  PASSWORD,
  startCluster,
} from './instances';

/**
 * Two real server processes on one PostgreSQL: events published by one reach subscribers
 * connected to the other (LISTEN/NOTIFY). Budgets and crashes across processes are in
 * multi-instance-gateway.test.ts.
 */
describe.runIf(multiInstanceEnabled)('two server processes on one PostgreSQL', () => {
  let cluster: Cluster;
  let a: Instance;
  let b: Instance;
  beforeAll(async () => {
    cluster = await startCluster();
    ({ a, b } = cluster);
  }, 60_000);
  afterAll(() => cluster?.close());

  it('a member subscribed on A sees a message sent through B, in order, with every delta', async () => {
    const onA = a.client();
    const onB = b.client();
    const session = await onA.auth.register.mutate({
      email: 'two-instances@example.com',
      password: PASSWORD,
      name: 'Two',
    });
    await onB.auth.login.mutate({
      email: session.user.email,
      password: PASSWORD,
    });
    const project = await onA.projects.create.mutate({ name: 'Shared' });
    const conversation = await onA.chat.conversations.create.mutate({ projectId: project.id });

    type Event = { type: string; text?: string; message?: { content: string } };
    const events: Event[] = [];
    const ids: number[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const sub = onA.chat.onEvent.subscribe(
        { conversationId: conversation.id },
        {
          onData(t) {
            events.push(t.data as Event);
            ids.push(Number(t.id));
            if ((t.data as Event).type === 'reply.completed') {
              sub.unsubscribe();
              resolve();
            }
          },
          onError: reject,
        },
      );
    });
    await new Promise((r) => setTimeout(r, 300));
    const words = Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ');
    await onB.chat.send.mutate({ conversationId: conversation.id, content: words });
    await done;

    expect(events[0]?.type).toBe('message.created');
    expect(events[1]?.type).toBe('reply.started');
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
    const text = events
      .filter((e) => e.type === 'reply.delta')
      .map((e) => e.text)
      .join('');
    expect(text).toBe(`Echo: ${words}`);
    expect(events.at(-1)?.message?.content).toBe(text);
    await closeClient(onA);
  });

  it('SIGTERM drains and exits cleanly', async () => {
    b.child.kill('SIGTERM');
    expect(await b.exited).toBe(0);
    // A is unaffected.
    expect((await fetch(`${a.origin}/health`)).status).toBe(200);
  });
});
