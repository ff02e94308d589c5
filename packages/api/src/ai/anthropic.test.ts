import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createAnthropicProvider } from './anthropic';
import { modelTable } from './models';
import type { ModelRequest } from './provider';
import { collectStream } from './testing/collect';
import { type FakeAnthropic, startFakeAnthropic } from './testing/fake-anthropic';

// The real SDK against a real local HTTP server: nothing here stubs the SDK or fetch.

const MODEL = 'claude-sonnet-5-5';
const claudeModels = modelTable().filter((m) => m.provider === 'anthropic');

let fake: FakeAnthropic;
beforeAll(async () => {
  fake = await startFakeAnthropic();
});
afterAll(() => fake.close());
beforeEach(() => fake.reset());

function provider(opts: { apiKey?: string; maxRetries?: number; baseURL?: string } = {}) {
  return createAnthropicProvider({
    apiKey: opts.apiKey ?? fake.apiKey,
    baseURL: opts.baseURL ?? fake.url,
    maxRetries: opts.maxRetries ?? 2,
    timeoutMs: 5_000,
    models: claudeModels,
  });
}

function request(over: Partial<ModelRequest> = {}): ModelRequest {
  return {
    model: MODEL,
    system: 'Be brief.',
    messages: [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'How are you?' },
    ],
    maxOutputTokens: 256,
    ...over,
  };
}

/** Fails the test instead of hanging when `p` does not settle in time. */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    p,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms),
    ),
  ]);
}

describe('streaming', () => {
  it('streams text deltas, then usage and stop reason from message_start/message_delta', async () => {
    fake.script({
      kind: 'reply',
      chunks: ['Fine', ', thanks', '!'],
      inputTokens: 42,
      outputTokens: 7,
    });
    const out = await collectStream(provider(), request());
    expect(out.error).toBeUndefined();
    expect(out.deltas).toEqual(['Fine', ', thanks', '!']);
    expect(out.done).toEqual({
      type: 'done',
      usage: { inputTokens: 42, outputTokens: 7 },
      stopReason: 'end_turn',
    });
  });

  it('sends the request the API expects, with key and version headers', async () => {
    fake.script({ kind: 'reply', chunks: ['ok'] });
    await collectStream(provider(), request());
    expect(fake.requests).toHaveLength(1);
    const [r] = fake.requests;
    expect(r).toMatchObject({
      method: 'POST',
      path: '/v1/messages',
      apiKey: fake.apiKey,
      model: MODEL,
      system: 'Be brief.',
      max_tokens: 256,
      stream: true,
      retryCount: 0,
      messages: [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello!' },
        { role: 'user', content: 'How are you?' },
      ],
    });
    expect(r?.anthropicVersion).toMatch(/^\d{4}-\d{2}-\d{2}$/);
  });

  it('leaves out an empty system prompt', async () => {
    await collectStream(provider(), request({ system: undefined }));
    expect(fake.requests[0]?.body).not.toHaveProperty('system');
  });

  it('passes the stop reason through and ignores thinking deltas', async () => {
    fake.script({
      kind: 'reply',
      thinking: ['Let me think', ' about it.'],
      chunks: ['Short', ' answer'],
      stopReason: 'max_tokens',
    });
    const out = await collectStream(provider(), request());
    expect(out.text).toBe('Short answer');
    expect(out.done?.stopReason).toBe('max_tokens');
  });

  it('refuses a model outside its table without calling the API', async () => {
    const out = await collectStream(provider(), request({ model: 'claude-unknown-9' }));
    expect(out.error?.code).toBe('model.unavailable');
    expect(fake.requests).toHaveLength(0);
  });
});

describe('upstream errors', () => {
  it('retries a 429 (honouring retry-after) and then streams the reply', async () => {
    fake.script(
      { kind: 'error', status: 429, retryAfterMs: 20 },
      { kind: 'reply', chunks: ['after', ' retry'] },
    );
    const out = await collectStream(provider(), request());
    expect(out.error).toBeUndefined();
    expect(out.text).toBe('after retry');
    expect(fake.requests.map((r) => r.retryCount)).toEqual([0, 1]);
  });

  it('maps a 429 that outlasts the retries to model.rate_limited (retryable)', async () => {
    fake.script(
      { kind: 'error', status: 429, retryAfterMs: 1 },
      { kind: 'error', status: 429, retryAfterMs: 1 },
    );
    const out = await collectStream(provider({ maxRetries: 1 }), request());
    expect(out.error).toMatchObject({ code: 'model.rate_limited', retryable: true });
    expect(fake.requests).toHaveLength(2);
  });

  it('maps 529 overloaded_error after all retries to model.overloaded (retryable)', async () => {
    const overloaded = { kind: 'error', status: 529, retryAfterMs: 1 } as const;
    fake.script(overloaded, overloaded, overloaded);
    const out = await collectStream(provider({ maxRetries: 2 }), request());
    expect(out.error).toMatchObject({ code: 'model.overloaded', retryable: true });
    expect(out.error?.message).toContain('req_fake_3');
    expect(fake.requests.map((r) => r.retryCount)).toEqual([0, 1, 2]);
    expect(out.deltas).toEqual([]);
  });

  it('maps a 500 to model.overloaded', async () => {
    fake.script({ kind: 'error', status: 500, retryAfterMs: 1 });
    const out = await collectStream(provider({ maxRetries: 0 }), request());
    expect(out.error).toMatchObject({ code: 'model.overloaded', retryable: true });
  });

  it('maps a wrong key (401 from the server) to model.auth_failed, without retrying', async () => {
    const out = await collectStream(provider({ apiKey: 'sk-ant-wrong' }), request());
    expect(out.error).toMatchObject({ code: 'model.auth_failed', retryable: false });
    expect(out.error?.message).toContain('invalid x-api-key');
    expect(out.error?.message).not.toContain('sk-ant-wrong');
    expect(fake.requests).toHaveLength(1);
  });

  it('maps a 403 to model.auth_failed', async () => {
    fake.script({ kind: 'error', status: 403 });
    const out = await collectStream(provider(), request());
    expect(out.error?.code).toBe('model.auth_failed');
  });

  it('maps a 400 to model.bad_request with the API message', async () => {
    fake.script({ kind: 'error', status: 400, message: 'prompt is too long: 1000001 tokens' });
    const out = await collectStream(provider(), request());
    expect(out.error).toMatchObject({ code: 'model.bad_request', retryable: false });
    expect(out.error?.message).toContain('prompt is too long');
    expect(fake.requests).toHaveLength(1);
  });

  it('maps an unreachable server to model.stream_interrupted', async () => {
    const gone = await startFakeAnthropic();
    const url = gone.url;
    await gone.close();
    const out = await collectStream(provider({ baseURL: url, maxRetries: 0 }), request());
    expect(out.error).toMatchObject({ code: 'model.stream_interrupted', retryable: true });
  });
});

describe('interrupted streams', () => {
  it('yields the text received, then throws stream_interrupted when the socket is cut', async () => {
    fake.script({ kind: 'cut', chunks: ['one', ' two'] });
    const out = await collectStream(provider(), request());
    expect(out.deltas).toEqual(['one', ' two']);
    expect(out.done).toBeUndefined();
    expect(out.error).toMatchObject({ code: 'model.stream_interrupted', retryable: true });
    // Nothing is retried once text has flowed: the caller already holds it.
    expect(fake.requests).toHaveLength(1);
  });

  it('treats a stream that ends cleanly but without message_stop as interrupted', async () => {
    fake.script({ kind: 'cut', chunks: ['partial'], mode: 'end' });
    const out = await collectStream(provider(), request());
    expect(out.text).toBe('partial');
    expect(out.done).toBeUndefined();
    expect(out.error?.code).toBe('model.stream_interrupted');
  });

  it('maps an SSE error event mid-stream (overloaded_error) after the text it got', async () => {
    fake.script({ kind: 'stream-error', chunks: ['some'] });
    const out = await collectStream(provider(), request());
    expect(out.text).toBe('some');
    expect(out.error).toMatchObject({ code: 'model.overloaded', retryable: true });
  });
});

describe('cancellation', () => {
  it('aborting mid-stream throws model.cancelled and closes the upstream connection', async () => {
    // The server sends one delta and then nothing: the abort lands while the SDK is
    // blocked reading the body, so only the signal reaching the HTTP request can end it.
    fake.script({ kind: 'hang', chunks: ['Hello'] });
    const ac = new AbortController();
    let abortedAt = 0;
    const out = await within(
      collectStream(provider(), request({ signal: ac.signal }), () => {
        setTimeout(() => {
          abortedAt = Date.now();
          ac.abort();
        }, 50);
      }),
      2_000,
    );
    expect(out.deltas).toEqual(['Hello']);
    expect(out.error).toMatchObject({ code: 'model.cancelled', retryable: false });
    const closed = await within(fake.requests[0]?.closed ?? Promise.reject(), 1_000);
    expect(closed.finished).toBe(false);
    expect(closed.at - abortedAt).toBeLessThan(1_000);
  });

  it('stops within one chunk: text already buffered is not delivered after an abort', async () => {
    fake.script({ kind: 'hang', chunks: ['Hello', ' there', ' again'] });
    const ac = new AbortController();
    const out = await within(
      collectStream(provider(), request({ signal: ac.signal }), () => ac.abort()),
      2_000,
    );
    expect(out.deltas).toEqual(['Hello']);
    expect(out.error?.code).toBe('model.cancelled');
    expect((await within(fake.requests[0]?.closed ?? Promise.reject(), 1_000)).finished).toBe(
      false,
    );
  });

  it('aborting during a retry wait stops at once', async () => {
    fake.script({ kind: 'error', status: 529, retryAfterMs: 20_000 });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const started = Date.now();
    const out = await within(collectStream(provider(), request({ signal: ac.signal })), 2_000);
    expect(out.error?.code).toBe('model.cancelled');
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(fake.requests).toHaveLength(1);
  });

  it('an already aborted signal sends nothing', async () => {
    const out = await collectStream(provider(), request({ signal: AbortSignal.abort() }));
    expect(out.error?.code).toBe('model.cancelled');
    expect(fake.requests).toHaveLength(0);
  });

  it('a consumer that stops reading early closes the upstream connection', async () => {
    fake.script({ kind: 'hang', chunks: ['first'] });
    for await (const event of provider().stream(request())) {
      expect(event).toEqual({ type: 'delta', text: 'first' });
      break;
    }
    const closed = await within(fake.requests[0]?.closed ?? Promise.reject(), 1_000);
    expect(closed.finished).toBe(false);
  });
});

describe('sampling and stop sequences', () => {
  it('sends temperature, top_p, top_k and stop_sequences, and reports the matched sequence', async () => {
    fake.script({
      kind: 'reply',
      chunks: ['a b'],
      stopReason: 'stop_sequence',
      stopSequence: '##',
    });
    const out = await collectStream(
      provider(),
      request({ temperature: 0.2, topP: 0.9, topK: 40, stopSequences: ['##', 'END'] }),
    );
    expect(out.error).toBeUndefined();
    expect(fake.requests[0]?.body).toMatchObject({
      temperature: 0.2,
      top_p: 0.9,
      top_k: 40,
      stop_sequences: ['##', 'END'],
    });
    expect(out.done).toMatchObject({ stopReason: 'stop_sequence', stopSequence: '##' });
  });

  it('leaves unset sampling fields out of the request', async () => {
    fake.script({ kind: 'reply', chunks: ['ok'] });
    await collectStream(provider(), request());
    const body = fake.requests[0]?.body as Record<string, unknown>;
    for (const key of ['temperature', 'top_p', 'top_k', 'stop_sequences']) {
      expect(body).not.toHaveProperty(key);
    }
  });
});

describe('prompt caching', () => {
  it('sends cache_control on the system prompt, blocks and tools, and reports cache tokens apart', async () => {
    fake.script({
      kind: 'reply',
      chunks: ['cached'],
      inputTokens: 10,
      cacheWriteTokens: 1000,
      cacheReadTokens: 200,
      outputTokens: 3,
    });
    const out = await collectStream(
      provider(),
      request({
        systemCacheControl: { type: 'ephemeral' },
        messages: [
          {
            role: 'user',
            content: [
              {
                type: 'text',
                text: 'A long document',
                cacheControl: { type: 'ephemeral', ttl: '1h' },
              },
            ],
          },
        ],
        tools: [
          {
            name: 'lookup',
            description: 'Looks up',
            inputSchema: { type: 'object', properties: {} },
            cacheControl: { type: 'ephemeral' },
          },
        ],
      }),
    );
    expect(out.done?.usage).toEqual({
      inputTokens: 1210,
      outputTokens: 3,
      cacheWriteTokens: 1000,
      cacheReadTokens: 200,
    });
    expect(fake.requests[0]?.body).toMatchObject({
      system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }],
      messages: [
        {
          role: 'user',
          content: [
            {
              type: 'text',
              text: 'A long document',
              cache_control: { type: 'ephemeral', ttl: '1h' },
            },
          ],
        },
      ],
      tools: [{ name: 'lookup', cache_control: { type: 'ephemeral' } }],
    });
  });
});
