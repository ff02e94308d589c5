/**
 * What the procedure walk (fuzz.test.ts) calls with: a platform admin owning a project with
 * conversations, replies, agents, a run, files and a budget limit, so that real ids get
 * inputs past the membership checks into validation and the services.
 */

import { randomUUID } from 'node:crypto';
import { startTestMcpServer, type TestMcpServer } from '@smartspace/api/testing/mcp';
import {
  createClient,
  memorySessionStore,
  type Session,
  type SmartSpaceClient,
} from '@smartspace/client';
import { WebSocketImpl } from './sockets';

export const FIXTURE_PASSWORD = 'correct horse battery staple';

export interface Fixtures {
  admin: { client: SmartSpaceClient; session: Session };
  /** Ids by the input field name that takes them. */
  ids: Record<string, string>;
  /** Per procedure, ids to use instead: procedures that destroy what they are given. */
  victims: Record<string, Record<string, string>>;
  /** An account whose sessions auth.logoutAll may end. */
  logoutEmail: string;
  /** The MCP server behind the fixture's tool servers; closed with the fixtures. */
  mcp: TestMcpServer;
}

async function signUp(origin: string, name: string) {
  const client = createClient({
    url: `${origin}/trpc`,
    session: memorySessionStore(),
    WebSocket: WebSocketImpl,
  });
  const session = await client.auth.register.mutate({
    email: `${name}@example.com`,
    password: FIXTURE_PASSWORD,
    name,
  });
  return { client, session };
}

function upload(client: SmartSpaceClient, projectId: string, name: string) {
  const fd = new FormData();
  fd.set('projectId', projectId);
  fd.set('file', new Blob(['fuzz fixture text']), name);
  return client.files.upload.mutate(fd);
}

export async function createFixtures(origin: string): Promise<Fixtures> {
  const admin = await signUp(origin, 'fuzz-admin'); // the first account is a platform admin
  const member = await signUp(origin, 'fuzz-member');
  const logout = await signUp(origin, 'fuzz-logout');
  const c = admin.client;
  const project = await c.projects.create.mutate({ name: 'Fuzz' });
  const doomedProject = await c.projects.create.mutate({ name: 'Fuzz victim' });
  await c.projects.members.add.mutate({
    projectId: project.id,
    email: member.session.user.email,
    role: 'member',
  });
  const conversation = await c.chat.conversations.create.mutate({ projectId: project.id });
  const sent = await c.chat.send.mutate({ conversationId: conversation.id, content: 'hi' });
  // Their own conversations: these rewrite or delete history the other procedures read.
  const doomedConversation = await c.chat.conversations.create.mutate({ projectId: project.id });
  const regenerated = await c.chat.conversations.create.mutate({ projectId: project.id });
  await c.chat.send.mutate({ conversationId: regenerated.id, content: 'again' });
  const edited = await c.chat.conversations.create.mutate({ projectId: project.id });
  const question = await c.chat.send.mutate({ conversationId: edited.id, content: 'edit me' });
  const agentFields = { projectId: project.id, instructions: 'Be brief.', model: 'mock-echo' };
  const agent = await c.agents.create.mutate({ ...agentFields, name: 'fuzz agent' });
  const doomedAgent = await c.agents.create.mutate({ ...agentFields, name: 'fuzz victim' });
  const run = await c.runs.start.mutate({ agentId: agent.id, input: 'hello' });
  const file = await upload(c, project.id, 'a.txt');
  const doomedFile = await upload(c, project.id, 'b.txt');
  // A real MCP server on loopback (the fuzzed server allows loopback for it).
  const mcp = await startTestMcpServer();
  const tools = await c.mcp.servers.create.mutate({
    projectId: project.id,
    name: 'fuzz',
    url: mcp.url,
  });
  const doomedTools = await c.mcp.servers.create.mutate({
    projectId: project.id,
    name: 'fuzz-victim',
    url: mcp.url,
  });
  const limit = await c.budgets.setLimit.mutate({
    projectId: project.id,
    scope: 'project',
    period: 'month',
    amount: '10',
  });
  return {
    admin,
    ids: {
      projectId: project.id,
      conversationId: conversation.id,
      replyId: sent.replyId,
      agentId: agent.id,
      runId: run.id,
      fileId: file.id,
      limitId: limit.id,
      serverId: tools.id,
      // Role and status changes land on the member, never on the admin making the calls.
      userId: member.session.user.id,
      actorId: admin.session.user.id,
      paymentId: randomUUID(),
      walletId: randomUUID(),
      unknownId: randomUUID(),
    },
    victims: {
      'projects.delete': { projectId: doomedProject.id },
      'agents.delete': { agentId: doomedAgent.id },
      'files.delete': { fileId: doomedFile.id },
      'mcp.servers.delete': { serverId: doomedTools.id },
      'chat.conversations.delete': { conversationId: doomedConversation.id },
      'chat.regenerate': { conversationId: regenerated.id },
      'chat.edit': { messageId: question.message.id },
    },
    logoutEmail: logout.session.user.email,
    mcp,
  };
}
