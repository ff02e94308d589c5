import { closeClient, type SmartSpaceClient } from '@smartspace/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cluster, multiInstanceEnabled, PASSWORD, startCluster } from './instances';
import { messagesWith, watch, within } from './subscriptions';

/**
 * Across processes: an access change made through one instance ends the
 * affected subscriptions held by another (NOTIFY on commit), and only those.
 */
describe.runIf(multiInstanceEnabled)('access changes across two server processes', () => {
  let cluster: Cluster;
  const clients: SmartSpaceClient[] = [];
  beforeAll(async () => {
    cluster = await startCluster();
  }, 60_000);
  afterAll(async () => {
    await Promise.all(clients.map((c) => closeClient(c)));
    await cluster?.close();
  });

  async function signUp(on: 'a' | 'b', name: string) {
    const client = cluster[on].client();
    clients.push(client);
    const session = await client.auth.register.mutate({
      email: `${name}-${Date.now()}@example.com`,
      password: PASSWORD,
      name,
    });
    return { client, email: session.user.email, userId: session.user.id };
  }

  it('removed through B: the member’s subscription on A ends; the owner’s on A goes on', async () => {
    const ownerOnB = await signUp('b', 'owner');
    const member = await signUp('a', 'member');
    const project = await ownerOnB.client.projects.create.mutate({ name: 'Across' });
    const { id: conversationId } = await ownerOnB.client.chat.conversations.create.mutate({
      projectId: project.id,
    });
    await ownerOnB.client.projects.members.add.mutate({
      projectId: project.id,
      email: member.email,
      role: 'admin',
    });
    const ownerOnA = cluster.a.client();
    clients.push(ownerOnA);
    await ownerOnA.auth.login.mutate({ email: ownerOnB.email, password: PASSWORD });

    const memberChat = watch((h) => member.client.chat.onEvent.subscribe({ conversationId }, h));
    const memberAlerts = watch((h) =>
      member.client.budgets.onAlert.subscribe({ projectId: project.id }, h),
    );
    const ownerChat = watch((h) => ownerOnA.chat.onEvent.subscribe({ conversationId }, h));
    await Promise.all([memberChat, memberAlerts, ownerChat].map((s) => s.started));

    await ownerOnB.client.projects.members.updateRole.mutate({
      projectId: project.id,
      userId: member.userId,
      role: 'viewer',
    });
    const revoked = { code: 'FORBIDDEN', appCode: 'projects.access_revoked' };
    expect(await within(memberAlerts.ended, 5000, 'onAlert on A')).toMatchObject(revoked);

    await ownerOnB.client.projects.members.remove.mutate({
      projectId: project.id,
      userId: member.userId,
    });
    expect(await within(memberChat.ended, 5000, 'onEvent on A')).toMatchObject(revoked);

    await ownerOnB.client.chat.send.mutate({ conversationId, content: 'after removal' });
    await expect.poll(() => messagesWith(ownerChat.data, 'after removal').length).toBe(1);
    expect(messagesWith(memberChat.data, 'after removal')).toEqual([]);
    ownerChat.stop();
  });
});
