import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { closeClient, createClient, type SmartSpaceClient } from '@smartspace/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTracing, type Tracing } from '../src/tracing';
import { startTestServer, type TestServer } from './harness';
import { WebSocketImpl } from './sockets';

/**
 * Tracing on, spans kept in memory: the span tree of one chat reply and of one agent run,
 * made through the real app over HTTP.
 */
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
const idOf = (s: ReadableSpan) => s.spanContext().spanId;

describe('tracing', () => {
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing;
  let server: TestServer;
  let client: SmartSpaceClient;
  let projectId: string;

  beforeAll(async () => {
    tracing = startTracing({
      serviceName: 'smartspace-test',
      processor: new SimpleSpanProcessor(exporter),
    });
    server = await startTestServer({ MODEL_PRICES: '{"mock-echo":{"input":"0","output":"1000"}}' });
    client = createClient({ url: `${server.origin}/trpc`, WebSocket: WebSocketImpl });
    await client.auth.register.mutate({
      email: `tracing-${Date.now()}@example.com`,
      password: 'correct horse battery staple',
      name: 'Traced',
    });
    projectId = (await client.projects.create.mutate({ name: 'Traced' })).id;
  }, 60_000);
  afterAll(async () => {
    await closeClient(client);
    await server?.close();
    await tracing?.shutdown();
  });

  async function until<T>(what: string, find: () => T | undefined, ms = 20_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = find();
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('traces a chat reply: the send, its model call with tokens and cost, its SQL', async () => {
    const conversation = await client.chat.conversations.create.mutate({
      projectId,
      model: 'mock-echo',
    });
    const sent = await client.chat.send.mutate({
      conversationId: conversation.id,
      content: 'trace this reply',
    });
    const spans = () => exporter.getFinishedSpans();
    const send = await until('the send span', () =>
      spans().find((s) => s.name === 'trpc chat.send'),
    );
    expect(send.attributes).toMatchObject({
      'rpc.system': 'trpc',
      'rpc.method': 'chat.send',
      'rpc.type': 'mutation',
      'smartspace.project_id': projectId,
    });
    // The reply runs after the send returned, still under its span.
    const model = await until('the model call span', () =>
      spans().find(
        (s) => s.name === 'model.call' && s.spanContext().traceId === send.spanContext().traceId,
      ),
    );
    expect(parentOf(model)).toBe(idOf(send));
    expect(model.attributes).toMatchObject({
      'gen_ai.request.model': 'mock-echo',
      'gen_ai.system': 'mock',
      'gen_ai.usage.output_tokens': 6, // "Echo: trace this reply", as mock-echo counts it
      'smartspace.cost_usdc': '0.006000',
      'smartspace.outcome': 'succeeded',
      'smartspace.source': 'chat',
    });
    if (process.env.TEST_DATABASE_URL) {
      const sql = spans().filter((s) => s.name === 'db.query' && parentOf(s) === idOf(send));
      expect(sql.length).toBeGreaterThan(0);
      expect(sql.every((s) => typeof s.attributes['db.statement'] === 'string')).toBe(true);
      // Placeholders, never the values.
      expect(JSON.stringify(sql.map((s) => s.attributes))).not.toContain('trace this reply');
    }
    const messages = await client.chat.messages.list.query({ conversationId: conversation.id });
    expect(messages.items.find((m) => m.id === sent.replyId)?.status).toBe('complete');
  });

  it('traces a run: its execution, each step, the model call inside the model step', async () => {
    const agent = await client.agents.create.mutate({
      projectId,
      name: 'Calculator',
      instructions: 'Be helpful.',
      model: 'mock-echo',
      tools: ['calculator'],
    });
    const run = await client.runs.start.mutate({
      agentId: agent.id,
      input: 'Add: [[tool:calculator {"expression":"2+2"}]]',
    });
    const spans = () => exporter.getFinishedSpans();
    const root = await until('the run span', () =>
      spans().find((s) => s.name === 'run' && s.attributes['smartspace.run_id'] === run.id),
    );
    const steps = spans().filter((s) => s.name === 'run.step' && parentOf(s) === idOf(root));
    expect(steps.map((s) => s.attributes['smartspace.step_kind'])).toEqual([
      'model',
      'tool',
      'model',
    ]);
    expect(steps[1]?.attributes['smartspace.tool']).toBe('calculator');
    for (const step of [steps[0], steps[2]]) {
      const calls = spans().filter(
        (s) => s.name === 'model.call' && parentOf(s) === idOf(step as ReadableSpan),
      );
      expect(calls).toHaveLength(1);
      expect(calls[0]?.attributes).toMatchObject({ 'smartspace.source': 'run' });
    }
    expect((await client.runs.get.query({ runId: run.id })).status).toBe('succeeded');
  });

  it('fails the span of a refused call, with its appCode', async () => {
    await expect(
      client.projects.get.query({ projectId: '00000000-0000-4000-8000-000000000000' }),
    ).rejects.toThrow();
    const failed = exporter.getFinishedSpans().find((s) => s.name === 'trpc projects.get');
    expect(failed?.status).toMatchObject({ code: 2 });
    expect(failed?.attributes['smartspace.error_code']).toMatch(/^projects\./);
  });
});
