import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FakeAnthropic, startFakeAnthropic } from './fake-anthropic';

// The fake server itself: raw HTTP for the wire format, the real SDK for compatibility.

let fake: FakeAnthropic;
beforeAll(async () => {
  fake = await startFakeAnthropic();
});
afterAll(() => fake.close());
beforeEach(() => fake.reset());

const body = (stream: boolean) =>
  JSON.stringify({
    model: 'claude-haiku-4-5',
    max_tokens: 50,
    stream,
    messages: [{ role: 'user', content: 'hi' }],
  });

const lookupTool = {
  name: 'lookup',
  description: 'Looks things up.',
  input_schema: { type: 'object' as const, properties: { q: { type: 'string' } } },
};

const toolBody = (stream: boolean) =>
  JSON.stringify({
    model: 'claude-haiku-4-5',
    max_tokens: 50,
    stream,
    tools: [lookupTool],
    messages: [{ role: 'user', content: 'hi' }],
  });

function post(payload: string, headers: Record<string, string> = {}) {
  return fetch(`${fake.url}/v1/messages`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-api-key': fake.apiKey,
      'anthropic-version': '2023-06-01',
      ...headers,
    },
    body: payload,
  });
}

describe('fake Anthropic server', () => {
  it('streams the event sequence of the real API', async () => {
    fake.script({ kind: 'reply', chunks: ['a', 'b'] });
    const res = await post(body(true));
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = [...(await res.text()).matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
    expect(events).toEqual([
      'message_start',
      'content_block_start',
      'ping',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(fake.requests[0]).toMatchObject({ authScheme: 'x-api-key', stream: true });
  });

  it('answers a non-streaming request with a message the SDK parses', async () => {
    fake.script({ kind: 'reply', chunks: ['Hello', ' there'], outputTokens: 3 });
    const client = new Anthropic({ apiKey: fake.apiKey, baseURL: fake.url, maxRetries: 0 });
    const message = await client.messages.create({
      model: 'claude-haiku-4-5',
      max_tokens: 50,
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(message.content).toEqual([{ type: 'text', text: 'Hello there', citations: null }]);
    expect(message.stop_reason).toBe('end_turn');
    expect(message.usage.output_tokens).toBe(3);
    expect(fake.requests[0]).toMatchObject({ authScheme: 'bearer', stream: false });
  });

  it('rejects a missing key, a missing version, a bad body and an unknown path', async () => {
    const noKey = await post(body(true), { 'x-api-key': '' });
    expect(noKey.status).toBe(401);
    expect(await noKey.json()).toMatchObject({
      type: 'error',
      error: { type: 'authentication_error' },
    });
    const noVersion = await post(body(true), { 'anthropic-version': '' });
    expect(noVersion.status).toBe(400);
    expect((await post('{"model":"m","messages":[]}')).status).toBe(400);
    const wrongPath = await fetch(`${fake.url}/v1/complete`, { method: 'POST' });
    expect(wrongPath.status).toBe(404);
    // Rejected requests are recorded but do not use up scripted steps.
    expect(fake.requests).toHaveLength(4);
    expect(fake.pending()).toBe(0);
  });

  it('takes scripted steps in order, handlers included, then falls back', async () => {
    fake.script({ kind: 'error', status: 503 }, (r) => ({
      kind: 'reply',
      chunks: [`for ${r.model}`],
    }));
    expect((await post(body(false))).status).toBe(503);
    expect(await (await post(body(false))).json()).toMatchObject({
      content: [{ type: 'text', text: 'for claude-haiku-4-5' }],
    });
    expect(await (await post(body(false))).json()).toMatchObject({
      content: [{ type: 'text', text: 'Hello from fake Claude.' }],
    });
  });

  it('streams tool calls as the real API does: block start, input fragments, block stop', async () => {
    fake.script({
      kind: 'tool-use',
      chunks: ['Checking.'],
      calls: [{ id: 'toolu_01X', name: 'lookup', input: { q: 'paris weather' } }],
    });
    const res = await post(toolBody(true));
    const events = [...(await res.text()).matchAll(/^event: (\w+)\ndata: (.*)$/gm)].map(
      (m) => [m[1], JSON.parse(m[2] ?? '')] as const,
    );
    expect(events.map(([name]) => name)).toEqual([
      'message_start',
      'content_block_start',
      'ping',
      'content_block_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    const data = events.map(([, d]) => d);
    expect(data[5]).toEqual({
      type: 'content_block_start',
      index: 1,
      content_block: { type: 'tool_use', id: 'toolu_01X', name: 'lookup', input: {} },
    });
    const fragments = data.slice(6, 10).map((d) => {
      expect(d).toMatchObject({ index: 1, delta: { type: 'input_json_delta' } });
      return d.delta.partial_json as string;
    });
    expect(fragments[0]).toBe('');
    expect(fragments.join('')).toBe('{"q":"paris weather"}');
    expect(data[11]).toMatchObject({ delta: { stop_reason: 'tool_use' } });
    expect(fake.requests[0]?.tools).toEqual([lookupTool]);
  });

  it('starts with the tool block when a tool-use reply has no text', async () => {
    fake.script({ kind: 'tool-use', calls: [{ name: 'lookup' }, { name: 'lookup' }] });
    const text = await (await post(toolBody(true))).text();
    const starts = [...text.matchAll(/"content_block":(\{[^}]*\})/g)].map((m) => m[1]);
    expect(starts).toEqual([
      '{"type":"tool_use","id":"toolu_fake_1_1","name":"lookup","input":{}',
      '{"type":"tool_use","id":"toolu_fake_1_2","name":"lookup","input":{}',
    ]);
    expect([...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]).slice(0, 3)).toEqual([
      'message_start',
      'content_block_start',
      'ping',
    ]);
  });

  it('answers a non-streaming tool-use request with tool_use blocks the SDK parses', async () => {
    fake.script({
      kind: 'tool-use',
      chunks: ['Checking.'],
      calls: [{ id: 'toolu_01Y', name: 'lookup', input: { q: 'x' } }],
    });
    const client = new Anthropic({ apiKey: fake.apiKey, baseURL: fake.url, maxRetries: 0 });
    const message = await client.messages.create({
      model: 'claude-haiku-4-5',
      max_tokens: 50,
      tools: [lookupTool],
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(message.stop_reason).toBe('tool_use');
    expect(message.content).toEqual([
      { type: 'text', text: 'Checking.', citations: null },
      { type: 'tool_use', id: 'toolu_01Y', name: 'lookup', input: { q: 'x' } },
    ]);
  });

  it('rejects tool definitions and tool blocks the real API would reject', async () => {
    const withTools = (tools: unknown, messages: unknown[]) =>
      JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 50, tools, messages });
    const hi = { role: 'user', content: 'hi' };
    const call = {
      role: 'assistant',
      content: [{ type: 'tool_use', id: 'toolu_1', name: 'lookup', input: {} }],
    };
    const result = (...ids: string[]) => ({
      role: 'user',
      content: ids.map((id) => ({ type: 'tool_result', tool_use_id: id, content: 'ok' })),
    });
    const cases: Array<[string, string]> = [
      [
        withTools([{ name: 'lookup', input_schema: { type: 'string' } }], [hi]),
        "Input should be 'object'",
      ],
      [
        withTools([{ name: 'bad name!', input_schema: { type: 'object' } }], [hi]),
        'should match pattern',
      ],
      [withTools([lookupTool, lookupTool], [hi]), 'Tool names must be unique'],
      [
        withTools([lookupTool], [hi, call, result('toolu_1', 'toolu_2')]),
        'unexpected `tool_use_id`',
      ],
      [withTools([lookupTool], [hi, call, hi]), 'without `tool_result` blocks immediately after'],
      [withTools(undefined, [hi, call, result('toolu_1')]), 'must define tools'],
    ];
    for (const [payload, message] of cases) {
      const res = await post(payload);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({
        error: { type: 'invalid_request_error', message: expect.stringContaining(message) },
      });
    }
    expect((await post(withTools([lookupTool], [hi, call, result('toolu_1')]))).status).toBe(200);
  });

  it('sets retry headers for a scripted error', async () => {
    fake.script({ kind: 'error', status: 429, retryAfterMs: 1500 });
    const res = await post(body(true));
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after-ms')).toBe('1500');
    expect(res.headers.get('retry-after')).toBe('2');
    expect(res.headers.get('request-id')).toBe('req_fake_1');
  });
});
