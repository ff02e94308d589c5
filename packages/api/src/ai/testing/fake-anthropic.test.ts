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

  it('sets retry headers for a scripted error', async () => {
    fake.script({ kind: 'error', status: 429, retryAfterMs: 1500 });
    const res = await post(body(true));
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after-ms')).toBe('1500');
    expect(res.headers.get('retry-after')).toBe('2');
    expect(res.headers.get('request-id')).toBe('req_fake_1');
  });
});
