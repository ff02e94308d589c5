import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createOpenAIProvider } from './openai';
import type { ModelRequest } from './provider';
import { collectStream } from './testing/collect';
import { type FakeOpenAI, startFakeOpenAI } from './testing/fake-openai';

// The real `openai` SDK against a real local HTTP server speaking Chat Completions.

let fake: FakeOpenAI;
beforeAll(async () => {
  fake = await startFakeOpenAI();
});
afterAll(() => fake.close());
beforeEach(() => fake.reset());

const MODEL = {
  id: 'house-gpt',
  provider: 'openai' as const,
  upstreamModel: 'gpt-upstream-1',
  inputPricePerMTok: '1',
  outputPricePerMTok: '4',
  contextWindow: 100_000,
  maxOutputTokens: 8_000,
};

function provider(apiKey = fake.apiKey) {
  return createOpenAIProvider({
    apiKey,
    baseURL: fake.url,
    maxRetries: 0,
    timeoutMs: 5_000,
    models: [MODEL],
  });
}

function request(over: Partial<ModelRequest> = {}): ModelRequest {
  return {
    model: 'house-gpt',
    system: 'Be brief.',
    messages: [{ role: 'user', content: 'Weather in Paris?' }],
    maxOutputTokens: 300,
    ...over,
  };
}

describe('OpenAI-compatible provider', () => {
  it('streams text, then usage from include_usage and the stop reason', async () => {
    fake.script({
      kind: 'reply',
      chunks: ['Sunny', ', 18°C'],
      promptTokens: 21,
      completionTokens: 5,
    });
    const out = await collectStream(provider(), request());
    expect(out.error).toBeUndefined();
    expect(out.deltas).toEqual(['Sunny', ', 18°C']);
    expect(out.done).toEqual({
      type: 'done',
      usage: { inputTokens: 21, outputTokens: 5 },
      stopReason: 'end_turn',
    });
  });

  it('sends the upstream model, converted messages, tools, sampling and include_usage', async () => {
    fake.script({ kind: 'reply', chunks: ['ok'] });
    await collectStream(
      provider(),
      request({
        messages: [
          { role: 'user', content: 'Weather?' },
          {
            role: 'assistant',
            content: [
              { type: 'text', text: 'Checking.' },
              { type: 'tool_use', id: 'call_1', name: 'weather', input: { city: 'Paris' } },
            ],
          },
          {
            role: 'user',
            content: [
              { type: 'tool_result', toolUseId: 'call_1', content: '18°C' },
              { type: 'text', text: 'And tomorrow?' },
            ],
          },
        ],
        tools: [
          {
            name: 'weather',
            description: 'Weather',
            inputSchema: { type: 'object', properties: {} },
          },
        ],
        temperature: 0.3,
        topP: 0.8,
        topK: 20,
        stopSequences: ['###'],
      }),
    );
    const [r] = fake.requests;
    expect(r?.apiKey).toBe(fake.apiKey);
    expect(r?.body).toMatchObject({
      model: 'gpt-upstream-1',
      max_completion_tokens: 300,
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0.3,
      top_p: 0.8,
      stop: ['###'],
      tools: [
        {
          type: 'function',
          function: { name: 'weather', description: 'Weather', parameters: { type: 'object' } },
        },
      ],
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Weather?' },
        {
          role: 'assistant',
          content: 'Checking.',
          tool_calls: [
            {
              id: 'call_1',
              type: 'function',
              function: { name: 'weather', arguments: '{"city":"Paris"}' },
            },
          ],
        },
        { role: 'tool', tool_call_id: 'call_1', content: '18°C' },
        { role: 'user', content: 'And tomorrow?' },
      ],
    });
    // Chat Completions has no top_k.
    expect(r?.body).not.toHaveProperty('top_k');
  });

  it('assembles streamed tool calls and reports stop reason tool_use', async () => {
    fake.script({
      kind: 'reply',
      chunks: ['Let me look.'],
      calls: [
        { id: 'call_a', name: 'weather', arguments: '{"city":"Paris"}' },
        { id: 'call_b', name: 'time', arguments: '' },
      ],
    });
    const out = await collectStream(provider(), request());
    expect(out.text).toBe('Let me look.');
    expect(out.toolUses).toEqual([
      { type: 'tool_use', id: 'call_a', name: 'weather', input: { city: 'Paris' } },
      { type: 'tool_use', id: 'call_b', name: 'time', input: {} },
    ]);
    expect(out.done?.stopReason).toBe('tool_use');
  });

  it('reports malformed tool arguments as bad_response', async () => {
    fake.script({ kind: 'reply', calls: [{ id: 'c', name: 'weather', arguments: '{"city":' }] });
    const out = await collectStream(provider(), request());
    expect(out.error).toMatchObject({ code: 'model.bad_response' });
  });

  it('reports cached prompt tokens as cache reads', async () => {
    fake.script({
      kind: 'reply',
      chunks: ['ok'],
      promptTokens: 500,
      cachedTokens: 400,
      completionTokens: 1,
    });
    const out = await collectStream(provider(), request());
    expect(out.done?.usage).toEqual({ inputTokens: 500, outputTokens: 1, cacheReadTokens: 400 });
  });

  it('maps finish_reason length to max_tokens, and estimates usage a server did not send', async () => {
    fake.script({ kind: 'reply', chunks: ['abcdefgh'], finishReason: 'length', noUsage: true });
    const out = await collectStream(provider(), request());
    expect(out.done?.stopReason).toBe('max_tokens');
    expect(out.done?.usage.outputTokens).toBe(2);
    expect(out.done?.usage.inputTokens).toBeGreaterThan(0);
  });

  it.each([
    [429, 'model.rate_limited', true],
    [503, 'model.overloaded', true],
    [529, 'model.overloaded', true],
    [400, 'model.bad_request', false],
    [403, 'model.auth_failed', false],
  ])('maps HTTP %i to %s (retryable %s)', async (status, code, retryable) => {
    fake.script({ kind: 'error', status, message: 'upstream says no' });
    const out = await collectStream(provider(), request());
    expect(out.error).toMatchObject({ code, retryable });
    expect(out.error?.message).toContain(`(${status})`);
    expect(out.error?.message).toContain('upstream says no');
  });

  it('maps a wrong key to auth_failed, without the key in the message', async () => {
    const out = await collectStream(provider('sk-wrong-secret'), request());
    expect(out.error).toMatchObject({ code: 'model.auth_failed', retryable: false });
    expect(out.error?.message).not.toContain('sk-wrong-secret');
  });

  it('reports a connection cut mid-stream as stream_interrupted, keeping the text', async () => {
    fake.script({ kind: 'cut', chunks: ['partial'] });
    const out = await collectStream(provider(), request());
    expect(out.text).toBe('partial');
    expect(out.error).toMatchObject({ code: 'model.stream_interrupted', retryable: true });
  });

  it('reports an unreachable server as stream_interrupted', async () => {
    const dead = createOpenAIProvider({
      apiKey: 'k',
      baseURL: 'http://127.0.0.1:9/v1',
      maxRetries: 0,
      models: [MODEL],
    });
    const out = await collectStream(dead, request());
    expect(out.error).toMatchObject({ code: 'model.stream_interrupted', retryable: true });
  });

  it('cancels when the signal aborts mid-stream', async () => {
    fake.script({ kind: 'reply', chunks: ['a', 'b', 'c', 'd'], chunkDelayMs: 30 });
    const ac = new AbortController();
    const out = await collectStream(provider(), request({ signal: ac.signal }), () => ac.abort());
    expect(out.error).toMatchObject({ code: 'model.cancelled' });
    expect(out.deltas.length).toBeLessThan(4);
  });

  it('refuses models it does not serve and lists its own without upstream details', async () => {
    const out = await collectStream(provider(), request({ model: 'other' }));
    expect(out.error).toMatchObject({ code: 'model.unavailable' });
    expect(provider().models()).toEqual([
      {
        id: 'house-gpt',
        provider: 'openai',
        inputPricePerMTok: '1',
        outputPricePerMTok: '4',
        contextWindow: 100_000,
        maxOutputTokens: 8_000,
      },
    ]);
  });
});
