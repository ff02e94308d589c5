import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApi, failure, type TestApi } from '../../testing';
import { auditEvents } from '../audit/audit.table';
import { createServer } from './mcp.service';
import { mcpServers } from './mcp.table';
import { mcpRuntime } from './runtime';
import { startTestMcpServer, type TestMcpServer } from './testing';

const TOKEN = 'Bearer mcp-secret-token-0123456789';

let t: TestApi;
let mcp: TestMcpServer;
beforeAll(async () => {
  [t, mcp] = await Promise.all([
    createTestApi({ MCP_ALLOW_HTTP_LOOPBACK: 'true', MOCK_MODEL_ENABLED: 'true' }),
    startTestMcpServer(),
  ]);
});
afterAll(async () => {
  await t.close();
  await mcp.close();
});

async function project(name: string) {
  const owner = await t.signUp(name);
  const c = t.caller(owner.accessToken);
  const { id: projectId } = await c.projects.create({ name });
  return { owner, c, projectId };
}

describe('MCP servers', () => {
  it('create reads the tool list; members see header names, never values', async () => {
    const { c, projectId } = await project('Discovery');
    const created = await c.mcp.servers.create({
      projectId,
      name: 'demo',
      url: mcp.url,
      headers: { Authorization: TOKEN },
    });
    expect(created).toMatchObject({ name: 'demo', status: 'ok', headerNames: ['authorization'] });
    expect(created.skippedTools).toEqual([]);
    expect(created.tools.map((x) => x.qualifiedName)).toEqual([
      'mcp__demo__add',
      'mcp__demo__big',
      'mcp__demo__echo',
      'mcp__demo__fail',
      'mcp__demo__grow',
      'mcp__demo__slow',
    ]);
    // The header went to the server with the discovery.
    expect(mcp.received.some((h) => h.authorization === TOKEN)).toBe(true);
    // Sessions are ended when done.
    await expect.poll(() => mcp.sessions).toBe(0);

    const listed = await c.mcp.servers.list({ projectId });
    expect(listed).toHaveLength(1);
    expect(JSON.stringify(listed)).not.toContain('mcp-secret-token');
    expect(JSON.stringify(created)).not.toContain('mcp-secret-token');
    // Not in the database in the clear either.
    const [row] = await t.api.database.db
      .select()
      .from(mcpServers)
      .where(eq(mcpServers.id, created.id));
    expect(row?.headersSealed).toBeTruthy();
    expect(JSON.stringify(row)).not.toContain('mcp-secret-token');

    // The catalogue: built-in tools, plus the project's MCP tools with their input schemas.
    const catalogue = await c.agents.tools({ projectId });
    const echo = catalogue.find((x) => x.name === 'mcp__demo__echo');
    expect(echo?.description).toBe('Echoes its text back.');
    expect(echo?.inputSchema).toMatchObject({
      type: 'object',
      properties: { text: { type: 'string' } },
      required: ['text'],
    });
    expect(catalogue.some((x) => x.name === 'calculator')).toBe(true);
    expect((await c.agents.tools()).some((x) => x.name.startsWith('mcp__'))).toBe(false);

    // Audited, without header values.
    const audit = await t.api.database.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.target, created.id));
    expect(audit.map((a) => a.action)).toEqual(['mcp.server_created']);
    expect(audit[0]?.metadata).toMatchObject({ name: 'demo', headerNames: ['authorization'] });
    expect(JSON.stringify(audit)).not.toContain('mcp-secret-token');
  });

  it('agents list MCP tools that exist in their project only', async () => {
    const { c, projectId } = await project('Agent Tools');
    await c.mcp.servers.create({ projectId, name: 'demo', url: mcp.url });
    const agent = await c.agents.create({
      projectId,
      name: 'With MCP',
      instructions: 'x',
      model: 'mock-echo',
      tools: ['calculator', 'mcp__demo__echo'],
      requiresApproval: ['mcp__demo__echo'],
    });
    expect(agent.tools).toEqual(['calculator', 'mcp__demo__echo']);
    for (const tools of [['mcp__demo__nope'], ['mcp__other__echo'], ['mcp__demo']]) {
      expect(
        await failure(
          c.agents.create({
            projectId,
            name: `Bad ${tools[0]}`,
            instructions: 'x',
            model: 'mock-echo',
            tools,
          }),
        ),
      ).toMatchObject({ appCode: 'agents.invalid' });
    }
    // Another project's server is not this project's.
    const other = await project('Other Tools');
    expect(
      await failure(
        other.c.agents.create({
          projectId: other.projectId,
          name: 'Thief',
          instructions: 'x',
          model: 'mock-echo',
          tools: ['mcp__demo__echo'],
        }),
      ),
    ).toMatchObject({ appCode: 'agents.invalid' });
  });

  it('rename follows into agents; delete drops the tools from them; both audited', async () => {
    const { c, projectId } = await project('Rename');
    const server = await c.mcp.servers.create({ projectId, name: 'old', url: mcp.url });
    const agent = await c.agents.create({
      projectId,
      name: 'Renamed',
      instructions: 'x',
      model: 'mock-echo',
      tools: ['mcp__old__echo', 'calculator'],
      requiresApproval: ['mcp__old__echo'],
    });
    const renamed = await c.mcp.servers.update({ serverId: server.id, name: 'new' });
    expect(renamed.tools.map((x) => x.qualifiedName)).toContain('mcp__new__echo');
    expect(await c.agents.get({ agentId: agent.id })).toMatchObject({
      tools: ['mcp__new__echo', 'calculator'],
      requiresApproval: ['mcp__new__echo'],
    });
    await c.mcp.servers.delete({ serverId: server.id });
    expect(await c.agents.get({ agentId: agent.id })).toMatchObject({
      tools: ['calculator'],
      requiresApproval: [],
    });
    expect(await c.mcp.servers.list({ projectId })).toEqual([]);
    const audit = await t.api.database.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.target, server.id));
    expect(audit.map((a) => a.action)).toEqual([
      'mcp.server_created',
      'mcp.server_updated',
      'mcp.server_deleted',
    ]);
  });

  it('update replaces headers (write-only), and refresh keeps the cache when the server fails', async () => {
    const { c, projectId } = await project('Refresh');
    const server = await c.mcp.servers.create({
      projectId,
      name: 'demo',
      url: mcp.url,
      headers: { 'X-Api-Key': 'first-key-value' },
    });
    const updated = await c.mcp.servers.update({
      serverId: server.id,
      headers: { 'X-Api-Key': 'second-key-value' },
    });
    expect(updated.headerNames).toEqual(['x-api-key']);
    expect(mcp.received.at(-1)?.['x-api-key']).toBe('second-key-value');
    expect(JSON.stringify(updated)).not.toContain('key-value');

    const refreshed = await c.mcp.servers.refresh({ serverId: server.id });
    expect(refreshed.status).toBe('ok');
    expect(mcp.received.at(-1)?.['x-api-key']).toBe('second-key-value');

    mcp.redirectTo = 'http://127.0.0.1:1/elsewhere';
    try {
      expect(await failure(c.mcp.servers.refresh({ serverId: server.id }))).toMatchObject({
        appCode: 'mcp.unreachable',
      });
    } finally {
      mcp.redirectTo = null;
    }
    const [after] = await c.mcp.servers.list({ projectId });
    expect(after?.status).toBe('error');
    expect(after?.lastError).toContain('redirect');
    expect(after?.tools).toHaveLength(6);
  });

  it('refuses redirects, private addresses, bad names, reserved headers, duplicates', async () => {
    const { c, projectId } = await project('Refusals');
    const create = (input: { name?: string; url?: string; headers?: Record<string, string> }) =>
      failure(c.mcp.servers.create({ projectId, name: 'x', url: mcp.url, ...input }));
    mcp.redirectTo = 'http://169.254.169.254/latest/meta-data';
    try {
      expect(await create({})).toMatchObject({ appCode: 'mcp.unreachable' });
    } finally {
      mcp.redirectTo = null;
    }
    expect(await create({ url: 'https://10.0.0.1/mcp' })).toMatchObject({
      appCode: 'mcp.url_refused',
    });
    expect(await create({ url: 'https://[fd00::1]/mcp' })).toMatchObject({
      appCode: 'mcp.url_refused',
    });
    expect(await create({ url: 'http://192.168.1.10/mcp' })).toMatchObject({
      appCode: 'mcp.url_refused',
    });
    expect(await create({ url: 'file:///etc/passwd' })).toMatchObject({
      appCode: 'mcp.url_refused',
    });
    expect(await create({ url: 'not a url' })).toMatchObject({ appCode: 'mcp.invalid' });
    for (const name of ['Upper', 'a__b', 'trailing_', '-lead', 'x'.repeat(33)]) {
      expect(await create({ name })).toMatchObject({ code: 'BAD_REQUEST' });
    }
    expect(await create({ headers: { Host: 'evil' } })).toMatchObject({ appCode: 'mcp.invalid' });
    expect(await create({ headers: { 'X-A': 'a\r\nX-B: b' } })).toMatchObject({
      appCode: 'mcp.invalid',
    });
    await c.mcp.servers.create({ projectId, name: 'x', url: mcp.url });
    expect(await create({})).toMatchObject({ appCode: 'mcp.name_taken' });
    // Nothing but the one server was stored.
    expect(await c.mcp.servers.list({ projectId })).toHaveLength(1);
  });

  it('roles: viewers list, only admins change; other tenants see nothing', async () => {
    const { c, projectId } = await project('Roles');
    const server = await c.mcp.servers.create({ projectId, name: 'demo', url: mcp.url });
    const viewer = await t.signUp('MCP Viewer');
    await c.projects.members.add({ projectId, email: viewer.user.email, role: 'viewer' });
    const v = t.caller(viewer.accessToken);
    expect(await v.mcp.servers.list({ projectId })).toHaveLength(1);
    const denied = { appCode: 'projects.role_insufficient' };
    expect(
      await failure(v.mcp.servers.create({ projectId, name: 'v', url: mcp.url })),
    ).toMatchObject(denied);
    expect(await failure(v.mcp.servers.update({ serverId: server.id, name: 'v' }))).toMatchObject(
      denied,
    );
    expect(await failure(v.mcp.servers.refresh({ serverId: server.id }))).toMatchObject(denied);
    expect(await failure(v.mcp.servers.delete({ serverId: server.id }))).toMatchObject(denied);

    const stranger = t.caller((await t.signUp('MCP Stranger')).accessToken);
    const hidden = { code: 'NOT_FOUND' };
    expect(await failure(stranger.mcp.servers.list({ projectId }))).toMatchObject(hidden);
    expect(await failure(stranger.agents.tools({ projectId }))).toMatchObject(hidden);
    expect(await failure(stranger.mcp.servers.refresh({ serverId: server.id }))).toMatchObject({
      appCode: 'mcp.not_found',
    });
    expect(await failure(stranger.mcp.servers.delete({ serverId: server.id }))).toMatchObject({
      appCode: 'mcp.not_found',
    });
    expect(await c.mcp.servers.list({ projectId })).toHaveLength(1);
  });

  it('without a key (production, no MCP_SECRET_KEY) servers with headers are refused', async () => {
    const { owner, projectId } = await project('No Key');
    const runtime = { ...mcpRuntime(t.api.deps.config), key: null };
    const actor = { kind: 'user' as const, userId: owner.user.id, ip: '127.0.0.1', requestId: 'r' };
    await expect(
      createServer({
        db: t.api.database.db,
        runtime,
        actor,
        projectId,
        name: 'keyless',
        url: mcp.url,
        headers: { authorization: TOKEN },
      }),
    ).rejects.toMatchObject({ code: 'mcp.secret_key_missing' });
    const plain = await createServer({
      db: t.api.database.db,
      runtime,
      actor,
      projectId,
      name: 'keyless',
      url: mcp.url,
    });
    expect(plain.tools).toHaveLength(6);
  });
});

describe('without MCP_ALLOW_HTTP_LOOPBACK', () => {
  it('loopback is refused, over http and https', async () => {
    const strict = await createTestApi();
    try {
      const owner = await strict.signUp('Strict');
      const c = strict.caller(owner.accessToken);
      const { id: projectId } = await c.projects.create({ name: 'Strict' });
      for (const url of [
        mcp.url,
        'https://127.0.0.1/mcp',
        'https://localhost/mcp',
        'https://[::1]/mcp',
      ]) {
        expect(
          await failure(c.mcp.servers.create({ projectId, name: 'local', url })),
        ).toMatchObject({
          appCode: 'mcp.url_refused',
        });
      }
    } finally {
      await strict.close();
    }
  });
});
