import { closeClient, createClient, type SmartSpaceClient } from '@smartspace/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './harness';
import { WebSocketImpl } from './sockets';
import { messagesWith, watch, within } from './subscriptions';

/**
 * An open subscription must not outlive the access that allowed it. A
 * membership removed, a role lowered below what the subscription needs, or the project
 * deleted ends the affected subscriptions (FORBIDDEN `projects.access_revoked`), and only
 * those: the socket and its other subscriptions carry on.
 */
let server: TestServer;
const clients: SmartSpaceClient[] = [];
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await Promise.all(clients.map((c) => closeClient(c)));
  await server.close();
});

const password = 'correct horse battery staple';
const revoked = { code: 'FORBIDDEN', appCode: 'projects.access_revoked' };
let seq = 0;

async function user(name: string) {
  const client = createClient({ url: `${server.origin}/trpc`, WebSocket: WebSocketImpl });
  clients.push(client);
  const session = await client.auth.register.mutate({
    email: `${name.toLowerCase()}-${++seq}-${Date.now()}@example.com`,
    password,
    name,
  });
  return { client, email: session.user.email, userId: session.user.id };
}

/** An owner's project and conversation, with `role` given to a second user. */
async function sharedProject(role: 'viewer' | 'member' | 'admin') {
  const owner = await user('Owner');
  const member = await user('Member');
  const project = await owner.client.projects.create.mutate({ name: 'Shared' });
  const conversation = await owner.client.chat.conversations.create.mutate({
    projectId: project.id,
  });
  await owner.client.projects.members.add.mutate({
    projectId: project.id,
    email: member.email,
    role,
  });
  return { owner, member, projectId: project.id, conversationId: conversation.id };
}

function onChat(client: SmartSpaceClient, conversationId: string) {
  return watch((h) => client.chat.onEvent.subscribe({ conversationId }, h));
}

/** A message sent now reaches `sub` (which therefore is still live). */
async function delivered(
  sender: SmartSpaceClient,
  conversationId: string,
  sub: { data: unknown[] },
  content: string,
) {
  const { replyId } = await sender.chat.send.mutate({ conversationId, content });
  await expect.poll(() => messagesWith(sub.data, content).length).toBe(1);
  // One reply at a time per conversation: the next send must wait for this one to end.
  await expect
    .poll(() => sub.data.some((e) => replyEnded(e, replyId)), { timeout: 15_000 })
    .toBe(true);
}

function replyEnded(e: unknown, replyId: string): boolean {
  const event = e as { type?: string; replyId?: string; message?: { id?: string } };
  return (
    (event.type === 'reply.completed' && event.message?.id === replyId) ||
    (event.type === 'reply.failed' && event.replyId === replyId)
  );
}

describe('subscriptions end when access ends', () => {
  it('a removed member: chat.onEvent and runs.onProgress end, no new message reaches them', async () => {
    const { owner, member, projectId, conversationId } = await sharedProject('member');
    const agent = await owner.client.agents.create.mutate({
      projectId,
      name: 'Echo',
      instructions: 'Echo.',
      model: 'mock-echo',
    });
    const run = await owner.client.runs.start.mutate({ agentId: agent.id, input: 'hi' });
    // The member's own project, on the same socket: it must carry on.
    const own = await member.client.projects.create.mutate({ name: 'Own' });
    const ownConversation = await member.client.chat.conversations.create.mutate({
      projectId: own.id,
    });

    const memberChat = onChat(member.client, conversationId);
    const memberRun = watch((h) => member.client.runs.onProgress.subscribe({ runId: run.id }, h));
    const memberOwn = onChat(member.client, ownConversation.id);
    const ownerChat = onChat(owner.client, conversationId);
    await Promise.all([memberChat, memberRun, memberOwn, ownerChat].map((s) => s.started));

    await owner.client.projects.members.remove.mutate({ projectId, userId: member.userId });
    expect(await within(memberChat.ended, 5000, 'chat.onEvent')).toMatchObject(revoked);
    expect(await within(memberRun.ended, 5000, 'runs.onProgress')).toMatchObject(revoked);

    await delivered(owner.client, conversationId, ownerChat, 'after removal');
    expect(messagesWith(memberChat.data, 'after removal')).toEqual([]);
    await delivered(member.client, ownConversation.id, memberOwn, 'still mine');

    // Subscribing again answers as for any non-member.
    const again = onChat(member.client, conversationId);
    expect(await within(again.ended, 5000, 'resubscribe')).toMatchObject({
      code: 'NOT_FOUND',
      appCode: 'chat.conversation_not_found',
    });
    for (const s of [memberOwn, ownerChat]) s.stop();
  });

  it('a role lowered below what a subscription needs ends that one only (budgets.onAlert needs admin)', async () => {
    const { owner, member, projectId, conversationId } = await sharedProject('admin');
    const alerts = watch((h) => member.client.budgets.onAlert.subscribe({ projectId }, h));
    const chat = onChat(member.client, conversationId);
    await Promise.all([alerts.started, chat.started]);

    // Raising a role or keeping it ends nothing.
    await owner.client.projects.members.updateRole.mutate({
      projectId,
      userId: member.userId,
      role: 'admin',
    });
    await delivered(owner.client, conversationId, chat, 'before downgrade');

    await owner.client.projects.members.updateRole.mutate({
      projectId,
      userId: member.userId,
      role: 'member',
    });
    expect(await within(alerts.ended, 5000, 'budgets.onAlert')).toMatchObject(revoked);
    // viewer is enough for chat.onEvent: it goes on, on the same socket.
    await delivered(owner.client, conversationId, chat, 'after downgrade');

    const again = watch((h) => member.client.budgets.onAlert.subscribe({ projectId }, h));
    expect(await within(again.ended, 5000, 'resubscribe')).toMatchObject({
      code: 'FORBIDDEN',
      appCode: 'projects.role_insufficient',
    });
    chat.stop();
  });

  it('deleting the project ends every subscription to it, the owner’s included', async () => {
    const { owner, member, projectId, conversationId } = await sharedProject('viewer');
    const memberChat = onChat(member.client, conversationId);
    const ownerChat = onChat(owner.client, conversationId);
    const ownerAlerts = watch((h) => owner.client.budgets.onAlert.subscribe({ projectId }, h));
    await Promise.all([memberChat, ownerChat, ownerAlerts].map((s) => s.started));

    await owner.client.projects.delete.mutate({ projectId });
    for (const s of [memberChat, ownerChat, ownerAlerts]) {
      expect(await within(s.ended, 5000, 'after delete')).toMatchObject(revoked);
    }
  });

  it('another member of the project keeps their subscription when one is removed', async () => {
    const { owner, member, projectId, conversationId } = await sharedProject('member');
    const third = await user('Third');
    await owner.client.projects.members.add.mutate({
      projectId,
      email: third.email,
      role: 'viewer',
    });
    const removed = onChat(member.client, conversationId);
    const kept = onChat(third.client, conversationId);
    await Promise.all([removed.started, kept.started]);

    await owner.client.projects.members.remove.mutate({ projectId, userId: member.userId });
    expect(await within(removed.ended, 5000, 'removed')).toMatchObject(revoked);
    await delivered(owner.client, conversationId, kept, 'for those who stay');
    kept.stop();
  });
});
