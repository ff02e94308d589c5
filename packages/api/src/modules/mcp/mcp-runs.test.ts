import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeAnthropic, TestApi } from '../../testing';
import { events, settled, startWithFakeAnthropic } from '../runs/testing';
import { startTestMcpServer, type TestMcpServer } from './testing';

/** Runs that call MCP tools of a real MCP server on loopback, through the real SDK. */

let t: TestApi;
let fake: FakeAnthropic;
let closeApi: () => Promise<void>;
let mcp: TestMcpServer;
beforeAll(async () => {
  // Claude models answer from a local Messages API server; mock-echo scripts tool calls.
  const [started, server] = await Promise.all([
    startWithFakeAnthropic({
      MCP_ALLOW_HTTP_LOOPBACK: 'true',
      MOCK_MODEL_ENABLED: 'true',
      // A tool answering later than this is timed out (slow is asked for 20 s).
      MCP_TIMEOUT_MS: '1500',
      MCP_MAX_RESPONSE_BYTES: '16384',
    }),
    startTestMcpServer(),
  ]);
  ({ t, fake, close: closeApi } = started);
  mcp = server;
});
afterAll(async () => {
  await closeApi();
  await mcp.close();
});

async function agentWith(name: string, tools: string[]) {
  const owner = await t.signUp(name);
  const c = t.caller(owner.accessToken);
  const { id: projectId } = await c.projects.create({ name });
  await c.mcp.servers.create({
    projectId,
    name: 'demo',
    url: mcp.url,
    headers: { authorization: 'Bearer run-token-abcdef' },
  });
  const agent = await c.agents.create({
    projectId,
    name,
    instructions: 'Use your tools.',
    model: 'mock-echo',
    tools,
  });
  return { c, projectId, agent };
}

const toolCalls = () => mcp.received.filter((h) => h['content-type']?.includes('json')).length;

describe('runs with MCP tools', () => {
  it('calls an MCP tool and answers from its result; the call is a timed step', async () => {
    const { c, agent } = await agentWith('Echo Run', ['mcp__demo__echo']);
    const started = await c.runs.start({
      agentId: agent.id,
      input: '[[tool:mcp__demo__echo {"text":"hello from the run"}]]',
    });
    const run = await settled(c, started.id);
    expect(run.status).toBe('succeeded');
    expect(run.output).toBe('Result: echo: hello from the run');
    const step = run.steps.find((s) => s.kind === 'tool');
    expect(step).toMatchObject({
      input: { text: 'hello from the run' },
      output: { content: 'echo: hello from the run' },
      error: null,
    });
    expect(step?.durationMs).toBeGreaterThanOrEqual(0);
    expect(Date.parse(step?.finishedAt ?? '')).toBeGreaterThanOrEqual(
      Date.parse(step?.startedAt ?? ''),
    );
    expect(mcp.received.at(-1)?.authorization).toBe('Bearer run-token-abcdef');
    const progress = await events(t, started.id);
    expect(progress).toContainEqual(
      expect.objectContaining({ type: 'tool.called', tool: 'mcp__demo__echo' }),
    );
    expect(progress).toContainEqual(
      expect.objectContaining({
        type: 'tool.result',
        tool: 'mcp__demo__echo',
        output: { content: 'echo: hello from the run' },
      }),
    );
    expect(JSON.stringify(progress)).not.toContain('run-token');
  });

  it('an isError result goes back to the model as a tool error', async () => {
    const { c, agent } = await agentWith('Failing Run', ['mcp__demo__fail']);
    const run = await settled(
      c,
      (await c.runs.start({ agentId: agent.id, input: '[[tool:mcp__demo__fail]]' })).id,
    );
    expect(run.status).toBe('succeeded');
    expect(run.output).toBe('Result (error): the tool failed on purpose');
    expect(run.steps.find((s) => s.kind === 'tool')?.error).toBe('the tool failed on purpose');
  });

  it('arguments are checked against the input schema before any call', async () => {
    const { c, agent } = await agentWith('Bad Args', ['mcp__demo__echo']);
    const before = toolCalls();
    const run = await settled(
      c,
      (await c.runs.start({ agentId: agent.id, input: '[[tool:mcp__demo__echo {"text": 5}]]' })).id,
    );
    expect(run.status).toBe('succeeded');
    const error = run.steps.find((s) => s.kind === 'tool')?.error;
    expect(error).toContain('Invalid input for mcp__demo__echo');
    expect(error).toContain('/text must be string');
    expect(toolCalls()).toBe(before);
  });

  it('a slow tool hits the timeout; the model hears of it and the run goes on', async () => {
    const { c, agent } = await agentWith('Slow Run', ['mcp__demo__slow']);
    const started = Date.now();
    const run = await settled(
      c,
      (await c.runs.start({ agentId: agent.id, input: '[[tool:mcp__demo__slow {"ms": 20000}]]' }))
        .id,
    );
    expect(run.status).toBe('succeeded');
    const step = run.steps.find((s) => s.kind === 'tool');
    expect(step?.error).toMatch(/The MCP server demo failed: .*timed out/i);
    expect(run.output).toMatch(/^Result \(error\): The MCP server demo failed/);
    // Timed out near MCP_TIMEOUT_MS (1.5 s), far from the tool's 20 s.
    expect(step?.durationMs).toBeGreaterThanOrEqual(1400);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('a response larger than the cap fails the call as a tool error', async () => {
    const { c, agent } = await agentWith('Big Run', ['mcp__demo__big']);
    const run = await settled(
      c,
      (await c.runs.start({ agentId: agent.id, input: '[[tool:mcp__demo__big]]' })).id,
    );
    expect(run.status).toBe('succeeded');
    const step = run.steps.find((s) => s.kind === 'tool');
    expect(step?.error).toMatch(
      /^The MCP server demo failed: .*the response is larger than 16384 bytes$/,
    );
    // Cut at the cap, not left to time out.
    expect(step?.durationMs).toBeLessThan(1400);
  });

  it('a tool the agent does not list is not called', async () => {
    const { c, agent } = await agentWith('Not Listed', ['mcp__demo__echo']);
    const before = toolCalls();
    const run = await settled(
      c,
      (await c.runs.start({ agentId: agent.id, input: '[[tool:mcp__demo__add {"a":1,"b":2}]]' }))
        .id,
    );
    expect(run.steps.find((s) => s.kind === 'tool')?.error).toContain('Unknown tool');
    expect(toolCalls()).toBe(before);
  });

  it('list_changed during a call updates the cached tool list', async () => {
    const { c, projectId, agent } = await agentWith('Growing', ['mcp__demo__grow']);
    const run = await settled(
      c,
      (await c.runs.start({ agentId: agent.id, input: '[[tool:mcp__demo__grow]]' })).id,
    );
    expect(run.output).toBe('Result: grew');
    const [server] = await c.mcp.servers.list({ projectId });
    expect(server?.tools.map((x) => x.name)).toContain('grown');
  });
});

describe('what the model is given', () => {
  it('MCP tools are offered as mcp__<server>__<tool> with their input schema', async () => {
    const { c, projectId } = await agentWith('Spec', []);
    const agent = await c.agents.create({
      projectId,
      name: 'Spec Claude',
      instructions: 'x',
      model: 'claude-haiku-4-5',
      tools: ['mcp__demo__add'],
    });
    fake.script(
      { kind: 'tool-use', calls: [{ name: 'mcp__demo__add', input: { a: 2, b: 40 } }] },
      { kind: 'reply', chunks: ['It is 42.'] },
    );
    const first = fake.requests.length;
    const run = await settled(c, (await c.runs.start({ agentId: agent.id, input: 'add' })).id);
    expect(run).toMatchObject({ status: 'succeeded', output: 'It is 42.' });
    const offered = fake.requests[first]?.tools as { name: string; input_schema: unknown }[];
    expect(offered.map((x) => x.name)).toEqual(['mcp__demo__add']);
    expect(offered[0]?.input_schema).toMatchObject({
      type: 'object',
      properties: { a: { type: 'number' }, b: { type: 'number' } },
      required: ['a', 'b'],
    });
    // The tool's text is the tool result the model reads.
    expect(JSON.stringify(fake.requests[first + 1]?.messages)).toContain('"content":"42"');
  });
});
