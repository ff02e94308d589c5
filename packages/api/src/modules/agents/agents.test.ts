import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApi, failure, type TestApi } from '../../testing';

let t: TestApi;
beforeAll(async () => {
  t = await createTestApi();
});
afterAll(() => t.close());

async function project(name: string) {
  const owner = await t.signUp(name);
  const c = t.caller(owner.accessToken);
  const { id: projectId } = await c.projects.create({ name });
  return { owner, c, projectId };
}

const base = { instructions: 'Be helpful.', model: 'mock-echo' };
const invalid = { code: 'BAD_REQUEST', appCode: 'agents.invalid' };

describe('agents', () => {
  it('create, get, list, update, delete', async () => {
    const { c, projectId } = await project('Agents CRUD');
    const agent = await c.agents.create({
      projectId,
      name: 'Helper',
      ...base,
      tools: ['calculator', 'calculator'],
    });
    expect(agent).toMatchObject({
      name: 'Helper',
      tools: ['calculator'],
      handoffs: [],
      status: 'active',
      maxSteps: 10,
    });
    expect(await c.agents.get({ agentId: agent.id })).toEqual(agent);
    const updated = await c.agents.update({ agentId: agent.id, status: 'inactive', maxSteps: 3 });
    expect(updated).toMatchObject({ status: 'inactive', maxSteps: 3, name: 'Helper' });
    expect((await c.agents.list({ projectId })).map((a) => a.id)).toEqual([agent.id]);
    expect(await c.agents.delete({ agentId: agent.id })).toEqual({ ok: true });
    expect(await failure(c.agents.get({ agentId: agent.id }))).toEqual({
      code: 'NOT_FOUND',
      appCode: 'agents.not_found',
    });
  });

  it("requiresApproval: a subset of the agent's tools, kept consistent through updates", async () => {
    const { c, projectId } = await project('Agents Approval');
    const agent = await c.agents.create({
      projectId,
      name: 'Careful',
      ...base,
      tools: ['calculator', 'current_time'],
      requiresApproval: ['calculator', 'calculator'],
    });
    expect(agent).toMatchObject({ requiresApproval: ['calculator'] });
    expect(await c.agents.get({ agentId: agent.id })).toMatchObject({
      requiresApproval: ['calculator'],
    });
    // Naming a tool the agent does not have: refused, on create and on update.
    expect(
      await failure(
        c.agents.create({ projectId, name: 'Bad', ...base, requiresApproval: ['calculator'] }),
      ),
    ).toEqual(invalid);
    expect(
      await failure(c.agents.update({ agentId: agent.id, requiresApproval: ['read_document'] })),
    ).toEqual(invalid);
    // Dropping a tool that still requires approval is refused until both change together.
    await expect(c.agents.update({ agentId: agent.id, tools: ['current_time'] })).rejects.toThrow(
      /requiresApproval names "calculator"/,
    );
    const both = await c.agents.update({
      agentId: agent.id,
      tools: ['current_time'],
      requiresApproval: [],
    });
    expect(both).toMatchObject({ tools: ['current_time'], requiresApproval: [] });
    // A member (not admin) cannot change it.
    const member = await t.signUp('Agents Approval Member');
    await c.projects.members.add({ projectId, email: member.user.email, role: 'member' });
    expect(
      await failure(
        t.caller(member.accessToken).agents.update({ agentId: agent.id, requiresApproval: [] }),
      ),
    ).toMatchObject({ code: 'FORBIDDEN' });
  });

  it('refuses unknown tools and models, bad schemas, foreign, inactive and self handoffs', async () => {
    const { c, projectId } = await project('Agents Validation');
    const other = await project('Other Tenant');
    const foreign = await other.c.agents.create({
      projectId: other.projectId,
      name: 'Foreign',
      ...base,
    });
    const sleeping = await c.agents.create({
      projectId,
      name: 'Sleeping',
      ...base,
      status: 'inactive',
    });
    const me = await c.agents.create({ projectId, name: 'Me', ...base });
    for (const bad of [
      { tools: ['shell'] },
      { model: 'gpt-9' },
      { outputSchema: { type: 'nonsense' } },
      { handoffs: [foreign.id] },
      { handoffs: [sleeping.id] },
      { handoffs: [crypto.randomUUID()] },
    ]) {
      expect({
        bad,
        ...(await failure(
          c.agents.create({ projectId, name: `x${Math.random()}`, ...base, ...bad }),
        )),
      }).toEqual({
        bad,
        ...invalid,
      });
    }
    expect(await failure(c.agents.update({ agentId: me.id, handoffs: [me.id] }))).toEqual(invalid);
    expect(await failure(c.agents.create({ projectId, name: 'Me', ...base }))).toEqual({
      code: 'CONFLICT',
      appCode: 'agents.name_taken',
    });
  });

  it('viewers read, admins write; deleting an agent removes it from others’ handoffs', async () => {
    const { c, projectId } = await project('Agents Roles');
    const viewer = await t.signUp('Agent Viewer');
    await c.projects.members.add({ projectId, email: viewer.user.email, role: 'viewer' });
    const target = await c.agents.create({ projectId, name: 'Target', ...base });
    const source = await c.agents.create({
      projectId,
      name: 'Source',
      ...base,
      handoffs: [target.id],
    });
    const v = t.caller(viewer.accessToken);
    expect((await v.agents.list({ projectId })).length).toBe(2);
    expect(await failure(v.agents.create({ projectId, name: 'Nope', ...base }))).toEqual({
      code: 'FORBIDDEN',
      appCode: 'projects.role_insufficient',
    });
    expect((await failure(v.runs.start({ agentId: source.id, input: 'go' }))).code).toBe(
      'FORBIDDEN',
    );
    await c.agents.delete({ agentId: target.id });
    expect((await c.agents.get({ agentId: source.id })).handoffs).toEqual([]);
  });

  it('an inactive agent cannot start runs', async () => {
    const { c, projectId } = await project('Inactive Runs');
    const agent = await c.agents.create({ projectId, name: 'Off', ...base, status: 'inactive' });
    expect(await failure(c.runs.start({ agentId: agent.id, input: 'go' }))).toEqual({
      code: 'PRECONDITION_FAILED',
      appCode: 'agents.inactive',
    });
  });

  it('the tool catalogue lists built-ins with JSON Schemas', async () => {
    const { c } = await project('Catalogue');
    const tools = await c.agents.tools();
    expect(tools.map((x) => x.name).sort()).toEqual([
      'calculator',
      'current_time',
      'read_document',
      'search_documents',
    ]);
    expect(tools.find((x) => x.name === 'calculator')?.inputSchema).toMatchObject({
      type: 'object',
      properties: { expression: { type: 'string' } },
      required: ['expression'],
    });
  });

  it('with the offline mock, a run completes end to end', async () => {
    const { c, projectId } = await project('Mock Run');
    const agent = await c.agents.create({ projectId, name: 'Echo', ...base });
    const run = await c.runs.start({ agentId: agent.id, input: 'hello agent' });
    await expect
      .poll(async () => (await c.runs.get({ runId: run.id })).status, { timeout: 10_000 })
      .toBe('succeeded');
    expect((await c.runs.get({ runId: run.id })).output).toBe('Echo: hello agent');
  });

  it('with the offline mock, a run calls a tool and answers from its result', async () => {
    const { c, projectId } = await project('Mock Tools');
    const agent = await c.agents.create({
      projectId,
      name: 'Counter',
      ...base,
      tools: ['calculator'],
    });
    const run = await c.runs.start({
      agentId: agent.id,
      input: 'Add: [[tool:calculator {"expression":"2+2"}]]',
    });
    await expect
      .poll(async () => (await c.runs.get({ runId: run.id })).status, { timeout: 10_000 })
      .toBe('succeeded');
    const done = await c.runs.get({ runId: run.id });
    expect(done.steps.map((s) => s.kind)).toEqual(['model', 'tool', 'model']);
    expect(done.steps[1]?.output).toEqual({ result: 4 });
    expect(done.output).toBe('Result: {"result":4}');
  });
});
