import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createBedrockProvider } from './bedrock';
import type { ModelRequest } from './provider';
import { collectStream } from './testing/collect';
import { type FakeBedrock, startFakeBedrock } from './testing/fake-bedrock';

// Anthropic's Bedrock SDK against a local stand-in for invoke-with-response-stream, with
// Bedrock's binary event-stream framing.

let fake: FakeBedrock;
beforeAll(async () => {
  fake = await startFakeBedrock();
});
afterAll(() => fake.close());
beforeEach(() => fake.reset());

const MODEL = {
  id: 'bedrock-sonnet',
  provider: 'bedrock' as const,
  upstreamModel: 'anthropic.claude-sonnet-5-5-v1:0',
  inputPricePerMTok: '2',
  outputPricePerMTok: '10',
  contextWindow: 200_000,
  maxOutputTokens: 8_000,
};

function provider() {
  return createBedrockProvider({
    awsRegion: 'eu-west-1',
    awsAccessKey: 'AKIAFAKEFAKEFAKE',
    awsSecretKey: 'fake-secret-access-key',
    baseURL: fake.url,
    maxRetries: 0,
    models: [MODEL],
  });
}

const request = (over: Partial<ModelRequest> = {}): ModelRequest => ({
  model: 'bedrock-sonnet',
  system: 'Be brief.',
  messages: [{ role: 'user', content: 'Hi' }],
  maxOutputTokens: 100,
  ...over,
});

describe('Bedrock provider', () => {
  it('streams text and usage through invoke-with-response-stream, signed, by upstream id', async () => {
    fake.script({
      kind: 'reply',
      chunks: ['Hello', ' from Bedrock'],
      inputTokens: 30,
      outputTokens: 4,
    });
    const out = await collectStream(
      provider(),
      request({ temperature: 0.1, stopSequences: ['##'] }),
    );
    expect(out.error).toBeUndefined();
    expect(out.deltas).toEqual(['Hello', ' from Bedrock']);
    expect(out.done).toMatchObject({
      usage: { inputTokens: 30, outputTokens: 4 },
      stopReason: 'end_turn',
    });
    const [r] = fake.requests;
    expect(r?.path).toBe(`/model/${MODEL.upstreamModel}/invoke-with-response-stream`);
    expect(r?.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIAFAKEFAKEFAKE\/\d{8}\/eu-west-1\/bedrock\//,
    );
    expect(r?.body).toMatchObject({
      anthropic_version: expect.any(String),
      max_tokens: 100,
      system: 'Be brief.',
      temperature: 0.1,
      stop_sequences: ['##'],
    });
    expect(r?.body).not.toHaveProperty('model');
  });

  it('assembles tool calls', async () => {
    fake.script({
      kind: 'reply',
      calls: [{ id: 'toolu_b1', name: 'weather', input: { city: 'Oslo' } }],
    });
    const out = await collectStream(provider(), request());
    expect(out.toolUses).toEqual([
      { type: 'tool_use', id: 'toolu_b1', name: 'weather', input: { city: 'Oslo' } },
    ]);
    expect(out.done?.stopReason).toBe('tool_use');
  });

  it.each([
    [429, 'ThrottlingException', 'model.rate_limited'],
    [503, 'ServiceUnavailableException', 'model.overloaded'],
    [403, 'AccessDeniedException', 'model.auth_failed'],
    [400, 'ValidationException', 'model.bad_request'],
  ])('maps HTTP %i %s to %s', async (status, errorType, code) => {
    fake.script({ kind: 'error', status, errorType });
    const out = await collectStream(provider(), request());
    expect(out.error).toMatchObject({ code });
    expect(out.error?.message).not.toContain('fake-secret-access-key');
  });
});
