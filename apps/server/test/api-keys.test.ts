import { closeClient, createClient, type SmartSpaceClient } from '@smartspace/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './harness';
import { type Cluster, multiInstanceEnabled, PASSWORD, startCluster } from './instances';
import { rawSocket, WebSocketImpl } from './sockets';
import { watch, within } from './subscriptions';

/** A typed client that sends `secret` as its bearer token, like an internal tool would. */
function keyClient(origin: string, secret: string): SmartSpaceClient {
  return createClient({
    url: `${origin}/trpc`,
    getAccessToken: () => secret,
    WebSocket: WebSocketImpl,
  });
}

describe('API keys over HTTP and WebSocket', () => {
  let server: TestServer;
  let owner: SmartSpaceClient;
  let projectId: string;
  let otherProjectId: string;
  let secret: string;
  let keyId: string;
  const clients: SmartSpaceClient[] = [];

  beforeAll(async () => {
    server = await startTestServer();
    owner = createClient({ url: `${server.origin}/trpc`, WebSocket: WebSocketImpl });
    clients.push(owner);
    await owner.auth.register.mutate({
      email: `keys-${Date.now()}@example.com`,
      password: PASSWORD,
      name: 'Key Owner',
    });
    projectId = (await owner.projects.create.mutate({ name: 'Tools' })).id;
    otherProjectId = (await owner.projects.create.mutate({ name: 'Other' })).id;
    const created = await owner.apiKeys.create.mutate({ projectId, name: 'ci', role: 'member' });
    secret = created.secret;
    keyId = created.key.id;
  }, 30_000);
  afterAll(async () => {
    await Promise.all(clients.map((c) => closeClient(c)));
    await server?.close();
  });

  it('authenticates a GET query, a POST mutation and a batch with Authorization: Bearer', async () => {
    const auth = { authorization: `Bearer ${secret}` };
    const input = encodeURIComponent(JSON.stringify({ projectId }));
    const get = await fetch(`${server.origin}/trpc/projects.get?input=${input}`, { headers: auth });
    expect(get.status).toBe(200);
    expect(((await get.json()) as { result: { data: { id: string } } }).result.data.id).toBe(
      projectId,
    );

    const post = await fetch(`${server.origin}/trpc/chat.conversations.create`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ projectId, title: 'from curl' }),
    });
    expect(post.status).toBe(200);

    const batchInput = encodeURIComponent(
      JSON.stringify({ 0: { projectId }, 1: { projectId: otherProjectId } }),
    );
    const batch = await fetch(
      `${server.origin}/trpc/projects.get,projects.get?batch=1&input=${batchInput}`,
      { headers: auth },
    );
    const body = (await batch.json()) as Array<{
      result?: unknown;
      error?: { data: { appCode: string } };
    }>;
    expect(body[0]?.result).toBeDefined();
    expect(body[1]?.error?.data.appCode).toBe('projects.not_found');
  });

  it('uploads with the typed client and downloads /files/:id, only in its project', async () => {
    const tool = keyClient(server.origin, secret);
    clients.push(tool);
    const fd = new FormData();
    fd.append('projectId', projectId);
    fd.append('file', new Blob(['hello from a key']), 'note.txt');
    const file = await tool.files.upload.mutate(fd);
    const download = await fetch(`${server.origin}/files/${file.id}`, {
      headers: { authorization: `Bearer ${secret}` },
    });
    expect(download.status).toBe(200);
    expect(await download.text()).toBe('hello from a key');

    const ofd = new FormData();
    ofd.append('projectId', otherProjectId);
    ofd.append('file', new Blob(['elsewhere']), 'other.txt');
    const other = await owner.files.upload.mutate(ofd);
    const refused = await fetch(`${server.origin}/files/${other.id}`, {
      headers: { authorization: `Bearer ${secret}` },
    });
    expect(refused.status).toBe(404);

    const bad = await fetch(`${server.origin}/files/${file.id}`, {
      headers: { authorization: `Bearer ssk_${'x'.repeat(43)}` },
    });
    expect(bad.status).toBe(401);
  });

  it('subscribes over WebSocket with connectionParams { token }, and revocation closes it (4001)', async () => {
    const { id: conversationId } = await owner.chat.conversations.create.mutate({ projectId });
    const revocable = await owner.apiKeys.create.mutate({ projectId, name: 'ws', role: 'viewer' });
    const socket = rawSocket(server.origin, { token: revocable.secret });
    await socket.opened;
    socket.ws.send(
      JSON.stringify({
        id: 1,
        method: 'subscription',
        params: { path: 'chat.onEvent', input: { conversationId } },
      }),
    );
    await expect
      .poll(() => socket.messages.some((m) => (m as { id?: number }).id === 1))
      .toBe(true);
    expect(JSON.stringify(socket.messages)).not.toContain('"error"');

    await owner.apiKeys.revoke.mutate({ keyId: revocable.key.id });
    expect(await within(socket.closed, 5000, 'key socket')).toMatchObject({ code: 4001 });
  });

  it('keeps working for the key that was not revoked', async () => {
    const tool = keyClient(server.origin, secret);
    clients.push(tool);
    const listed = await tool.apiKeys.list.query({ projectId }).catch((e: unknown) => e);
    // A member key may not list keys (admins only); the refusal is about the role.
    expect(listed).toMatchObject({ data: { appCode: 'projects.role_insufficient' } });
    expect((await tool.projects.get.query({ projectId })).id).toBe(projectId);
    expect(keyId).toBeTruthy();
  });
});

/** Revocation through one instance closes the key's sockets on another. */
describe.runIf(multiInstanceEnabled)('API key revocation across two server processes', () => {
  let cluster: Cluster;
  const clients: SmartSpaceClient[] = [];
  beforeAll(async () => {
    cluster = await startCluster();
  }, 60_000);
  afterAll(async () => {
    await Promise.all(clients.map((c) => closeClient(c)));
    await cluster?.close();
  });

  it('revoked on B: the subscription held on A ends and the socket closes with 4001', async () => {
    const owner = cluster.b.client();
    clients.push(owner);
    await owner.auth.register.mutate({
      email: `keys-cluster-${Date.now()}@example.com`,
      password: PASSWORD,
      name: 'Cluster Owner',
    });
    const project = await owner.projects.create.mutate({ name: 'Across' });
    const { id: conversationId } = await owner.chat.conversations.create.mutate({
      projectId: project.id,
    });
    const key = await owner.apiKeys.create.mutate({
      projectId: project.id,
      name: 'tool on A',
      role: 'member',
    });
    const tool = keyClient(cluster.a.origin, key.secret);
    clients.push(tool);
    const sub = watch((h) => tool.chat.onEvent.subscribe({ conversationId }, h));
    await sub.started;
    const socket = rawSocket(cluster.a.origin, { token: key.secret });
    await socket.opened;

    await owner.apiKeys.revoke.mutate({ keyId: key.key.id });
    expect(await within(socket.closed, 5000, 'raw key socket on A')).toMatchObject({
      code: 4001,
    });
    await within(sub.ended, 5000, 'key subscription on A');
    const after = await tool.projects.get.query({ projectId: project.id }).catch((e: unknown) => e);
    expect(after).toMatchObject({ data: { appCode: 'auth.key_revoked' } });
  });
});
