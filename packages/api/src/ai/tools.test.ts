import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createAnthropicProvider } from './anthropic';
import { modelTable } from './models';
import type { ChatTurn, ModelRequest, ToolSpec } from './provider';
import { collectStream } from './testing/collect';
import { type FakeAnthropic, startFakeAnthropic } from './testing/fake-anthropic';

// Tool use through the real SDK against the fake server, which streams tool calls as the
// real API does and checks tool_use/tool_result pairing as the real API does.

const MODEL = 'claude-sonnet-5-5';

let fake: FakeAnthropic;
beforeAll(async () => {
  fake = await startFakeAnthropic();
});
afterAll(() => fake.close());
beforeEach(() => fake.reset());

const provider = () =>
  createAnthropicProvider({
    apiKey: fake.apiKey,
    baseURL: fake.url,
    maxRetries: 0,
    timeoutMs: 5_000,
    models: modelTable().filter((m) => m.provider === 'anthropic'),
  });

const weather: ToolSpec = {
  name: 'get_weather',
  description: 'Current weather for a city.',
  inputSchema: {
    type: 'object',
    properties: { city: { type: 'string' }, units: { enum: ['c', 'f'] } },
    required: ['city'],
  },
};
const clock: ToolSpec = {
  name: 'get_time',
  description: 'The current time.',
  inputSchema: { type: 'object', properties: {} },
};

const question: ChatTurn = { role: 'user', content: 'Weather and time in Paris?' };

function request(over: Partial<ModelRequest> = {}): ModelRequest {
  return {
    model: MODEL,
    messages: [question],
    maxOutputTokens: 512,
    tools: [weather, clock],
    ...over,
  };
}

describe('tool calls in a streamed reply', () => {
  it('yields the text deltas, each call with its parsed input, then done with tool_use', async () => {
    fake.script({
      kind: 'tool-use',
      chunks: ['Let me', ' check.'],
      calls: [
        { id: 'toolu_01A', name: 'get_weather', input: { city: 'Paris', units: 'c' } },
        { id: 'toolu_01B', name: 'get_time' },
      ],
      inputTokens: 300,
      outputTokens: 61,
    });
    const out = await collectStream(provider(), request());
    expect(out.error).toBeUndefined();
    expect(out.events).toEqual([
      { type: 'delta', text: 'Let me' },
      { type: 'delta', text: ' check.' },
      {
        type: 'tool_use',
        id: 'toolu_01A',
        name: 'get_weather',
        input: { city: 'Paris', units: 'c' },
      },
      { type: 'tool_use', id: 'toolu_01B', name: 'get_time', input: {} },
      { type: 'done', usage: { inputTokens: 300, outputTokens: 61 }, stopReason: 'tool_use' },
    ]);
  });

  it('reassembles input split mid-key and mid-value, nested values and unicode included', async () => {
    const input = { city: 'São Paulo', days: [1, 2], opts: { detail: 'high "quoted"' } };
    const json = JSON.stringify(input);
    const pieces = ['', json.slice(0, 3), json.slice(3, 11), json.slice(11, 12), json.slice(12)];
    fake.script({ kind: 'tool-use', calls: [{ name: 'get_weather', partialJson: pieces }] });
    const out = await collectStream(provider(), request());
    expect(out.deltas).toEqual([]);
    expect(out.toolUses).toEqual([
      { type: 'tool_use', id: 'toolu_fake_1_1', name: 'get_weather', input },
    ]);
    expect(out.done?.stopReason).toBe('tool_use');
  });

  it('offers the tools as name, description and input_schema', async () => {
    fake.script({ kind: 'reply', chunks: ['No tools needed.'] });
    await collectStream(provider(), request());
    expect(fake.requests[0]?.tools).toEqual([
      { name: 'get_weather', description: weather.description, input_schema: weather.inputSchema },
      { name: 'get_time', description: clock.description, input_schema: clock.inputSchema },
    ]);
  });

  it('sends no tools field when none are offered', async () => {
    await collectStream(provider(), request({ tools: [] }));
    await collectStream(provider(), request({ tools: undefined }));
    expect(fake.requests.map((r) => 'tools' in (r.body as object))).toEqual([false, false]);
  });
});

describe('tool results sent back', () => {
  const followUp: ChatTurn[] = [
    question,
    {
      role: 'assistant',
      content: [
        { type: 'text', text: 'Let me check.' },
        { type: 'tool_use', id: 'toolu_01A', name: 'get_weather', input: { city: 'Paris' } },
        { type: 'tool_use', id: 'toolu_01B', name: 'get_time', input: {} },
      ],
    },
    {
      role: 'user',
      content: [
        { type: 'tool_result', toolUseId: 'toolu_01A', content: '18°C, sunny' },
        { type: 'tool_result', toolUseId: 'toolu_01B', content: 'clock offline', isError: true },
      ],
    },
  ];

  it('are sent in the wire format of the API', async () => {
    fake.script({ kind: 'reply', chunks: ['18°C and sunny; the time is unknown.'] });
    const out = await collectStream(provider(), request({ messages: followUp }));
    expect(out.error).toBeUndefined();
    expect(out.done?.stopReason).toBe('end_turn');
    expect(fake.requests[0]?.messages).toEqual([
      { role: 'user', content: 'Weather and time in Paris?' },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Let me check.' },
          { type: 'tool_use', id: 'toolu_01A', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'toolu_01B', name: 'get_time', input: {} },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_01A', content: '18°C, sunny' },
          {
            type: 'tool_result',
            tool_use_id: 'toolu_01B',
            content: 'clock offline',
            is_error: true,
          },
        ],
      },
    ]);
  });

  it('round-trips: the calls a reply made, answered, make a request the API accepts', async () => {
    fake.script(
      {
        kind: 'tool-use',
        chunks: ['Checking.'],
        calls: [{ name: 'get_weather', input: { city: 'Paris' } }],
      },
      { kind: 'reply', chunks: ['Sunny.'] },
    );
    const first = await collectStream(provider(), request());
    const calls = first.toolUses;
    const messages: ChatTurn[] = [
      question,
      {
        role: 'assistant',
        content: [{ type: 'text', text: first.text }, ...calls.map((c) => ({ ...c }))],
      },
      {
        role: 'user',
        content: calls.map((c) => ({ type: 'tool_result', toolUseId: c.id, content: 'sunny' })),
      },
    ];
    const second = await collectStream(provider(), request({ messages }));
    expect(second.error).toBeUndefined();
    expect(second.text).toBe('Sunny.');
    expect(fake.requests[1]?.messages).toMatchObject([
      {},
      { content: [{ type: 'text' }, { type: 'tool_use', id: 'toolu_fake_1_1' }] },
      { content: [{ type: 'tool_result', tool_use_id: 'toolu_fake_1_1', content: 'sunny' }] },
    ]);
  });

  it('leaves out empty text blocks, which the API rejects', async () => {
    const [, assistant, results] = followUp;
    if (!assistant || !results || typeof assistant.content === 'string') throw new Error('setup');
    const noText: ChatTurn = {
      role: 'assistant',
      content: [{ type: 'text', text: '' }, ...assistant.content.slice(1)],
    };
    const out = await collectStream(provider(), request({ messages: [question, noText, results] }));
    expect(out.error).toBeUndefined();
    expect(fake.requests[0]?.messages).toMatchObject([
      {},
      { content: [{ type: 'tool_use' }, { type: 'tool_use' }] },
      {},
    ]);
  });

  it('a result for a call that was never made gets the API 400, as model.bad_request', async () => {
    const stray: ChatTurn = {
      role: 'user',
      content: [{ type: 'tool_result', toolUseId: 'toolu_nope', content: 'x' }],
    };
    const out = await collectStream(
      provider(),
      request({ messages: [...followUp, { role: 'assistant', content: 'ok' }, stray] }),
    );
    expect(out.error).toMatchObject({ code: 'model.bad_request', retryable: false });
    expect(out.error?.message).toContain('unexpected `tool_use_id`');
  });

  it('history with tool blocks but no tools offered gets the API 400', async () => {
    const out = await collectStream(provider(), request({ messages: followUp, tools: undefined }));
    expect(out.error?.code).toBe('model.bad_request');
    expect(out.error?.message).toContain('must define tools');
  });
});

describe('broken tool input', () => {
  it('malformed JSON from upstream throws model.bad_response after the text', async () => {
    fake.script({
      kind: 'tool-use',
      chunks: ['Checking.'],
      calls: [{ name: 'get_weather', partialJson: ['', '{"city": "Par', 'is",}'] }],
    });
    const out = await collectStream(provider(), request());
    expect(out.text).toBe('Checking.');
    expect(out.toolUses).toEqual([]);
    expect(out.done).toBeUndefined();
    expect(out.error).toMatchObject({ code: 'model.bad_response', retryable: false });
    expect(out.error?.message).toContain('get_weather');
  });

  it('input that parses but is not an object is malformed too', async () => {
    fake.script({ kind: 'tool-use', calls: [{ name: 'get_time', partialJson: ['["now"]'] }] });
    const out = await collectStream(provider(), request());
    expect(out.error?.code).toBe('model.bad_response');
  });

  it('a call cut off by max_tokens is dropped, and the stop reason says why', async () => {
    fake.script({
      kind: 'tool-use',
      chunks: ['Checking.'],
      calls: [
        { id: 'toolu_ok', name: 'get_time' },
        { name: 'get_weather', partialJson: ['', '{"city": "Par'] },
      ],
      stopReason: 'max_tokens',
    });
    const out = await collectStream(provider(), request());
    expect(out.error).toBeUndefined();
    expect(out.toolUses).toEqual([
      { type: 'tool_use', id: 'toolu_ok', name: 'get_time', input: {} },
    ]);
    expect(out.done?.stopReason).toBe('max_tokens');
  });

  it('a connection cut mid-input is an interruption, and the partial call is not yielded', async () => {
    fake.script({
      kind: 'tool-use',
      chunks: ['Checking.'],
      calls: [{ name: 'get_weather', input: { city: 'Paris' } }],
      cutMidInput: true,
    });
    const out = await collectStream(provider(), request());
    expect(out.text).toBe('Checking.');
    expect(out.toolUses).toEqual([]);
    expect(out.error).toMatchObject({ code: 'model.stream_interrupted', retryable: true });
  });
});
