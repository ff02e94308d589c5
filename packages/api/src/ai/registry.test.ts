import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../config';
import { DEFAULT_CLAUDE_MODEL, MOCK_MODEL_ID } from './models';
import { ModelError } from './provider';
import { createModelRegistry } from './registry';
import { collectStream } from './testing/collect';
import { type FakeAnthropic, startFakeAnthropic } from './testing/fake-anthropic';

// Through loadConfig, so the environment variables themselves are what is tested.
function config(env: Record<string, string> = {}) {
  return loadConfig({
    NODE_ENV: 'test',
    JWT_SECRET: 'registry-test-secret-that-is-long-enough-0123456789',
    ...env,
  });
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('without ANTHROPIC_API_KEY', () => {
  const registry = createModelRegistry(config({ DEFAULT_MODEL: 'claude-opus-5-5' }));

  it('offers only the mock, and makes it the default', () => {
    expect(registry.defaultModel).toBe(MOCK_MODEL_ID);
    expect(registry.models().map((m) => m.id)).toEqual([MOCK_MODEL_ID]);
  });

  it('refuses a Claude model with model.unavailable naming ANTHROPIC_API_KEY', () => {
    const err = thrown(() => registry.provider('claude-sonnet-5-5'));
    expect(err).toBeInstanceOf(ModelError);
    expect(err).toMatchObject({ code: 'model.unavailable' });
    expect((err as ModelError).message).toContain('ANTHROPIC_API_KEY');
  });

  it('still prices Claude models, for usage already recorded', () => {
    expect(registry.get('claude-haiku-4-5')).toMatchObject({
      inputPricePerMTok: '1',
      outputPricePerMTok: '5',
    });
  });

  it('refuses unknown models', () => {
    expect(registry.get('gpt-9')).toBeUndefined();
    expect(thrown(() => registry.provider('gpt-9'))).toMatchObject({ code: 'model.unavailable' });
  });

  it('serves the mock', async () => {
    const out = await collectStream(registry.provider(MOCK_MODEL_ID), {
      model: MOCK_MODEL_ID,
      messages: [{ role: 'user', content: 'hi' }],
      maxOutputTokens: 100,
    });
    expect(out.text).toBe('Echo: hi');
  });
});

describe('mock availability', () => {
  const prod = { NODE_ENV: 'production' };

  it('is off in production unless MOCK_MODEL_ENABLED=true', () => {
    const registry = createModelRegistry(config(prod));
    const err = thrown(() => registry.provider(MOCK_MODEL_ID));
    expect(err).toMatchObject({ code: 'model.unavailable' });
    expect((err as ModelError).message).toContain('MOCK_MODEL_ENABLED');
    expect(registry.models()).toEqual([]);
    // Nothing is usable: the default names the model a key would unlock.
    expect(registry.defaultModel).toBe(DEFAULT_CLAUDE_MODEL);

    const enabled = createModelRegistry(config({ ...prod, MOCK_MODEL_ENABLED: 'true' }));
    expect(enabled.provider(MOCK_MODEL_ID).models()[0]?.id).toBe(MOCK_MODEL_ID);
  });

  it('can be switched off outside production', () => {
    const registry = createModelRegistry(config({ MOCK_MODEL_ENABLED: 'false' }));
    expect(thrown(() => registry.provider(MOCK_MODEL_ID))).toMatchObject({
      code: 'model.unavailable',
    });
  });

  it('rejects DEFAULT_MODEL=mock-echo while the mock is disabled', () => {
    expect(() => config({ ...prod, DEFAULT_MODEL: MOCK_MODEL_ID })).toThrow(
      /DEFAULT_MODEL: mock-echo is disabled/,
    );
  });
});

describe('with ANTHROPIC_API_KEY', () => {
  let fake: FakeAnthropic;
  beforeAll(async () => {
    fake = await startFakeAnthropic();
  });
  afterAll(() => fake.close());

  const withKey = (env: Record<string, string> = {}) =>
    config({ ANTHROPIC_API_KEY: fake.apiKey, ANTHROPIC_BASE_URL: fake.url, ...env });

  it('defaults to Claude Sonnet, or DEFAULT_MODEL, and lists Claude and the mock', () => {
    const registry = createModelRegistry(withKey());
    expect(registry.defaultModel).toBe(DEFAULT_CLAUDE_MODEL);
    expect(registry.models().map((m) => m.id)).toContain('claude-opus-5-5');
    expect(registry.models().map((m) => m.id)).toContain(MOCK_MODEL_ID);
    expect(createModelRegistry(withKey({ DEFAULT_MODEL: 'claude-haiku-4-5' })).defaultModel).toBe(
      'claude-haiku-4-5',
    );
  });

  it('serves Claude models through the configured base URL and key', async () => {
    fake.script({ kind: 'reply', chunks: ['from', ' Claude'] });
    const registry = createModelRegistry(withKey());
    const out = await collectStream(registry.provider('claude-opus-5-5'), {
      model: 'claude-opus-5-5',
      messages: [{ role: 'user', content: 'hi' }],
      maxOutputTokens: 100,
    });
    expect(out.text).toBe('from Claude');
    expect(fake.requests.at(-1)).toMatchObject({ model: 'claude-opus-5-5', apiKey: fake.apiKey });
  });
});

describe('configuration', () => {
  it('MODEL_PRICES overrides list prices, as decimal strings', () => {
    const registry = createModelRegistry(
      config({
        MODEL_PRICES: JSON.stringify({
          'claude-sonnet-5-5': { input: '1.5', output: 7.25 },
          'mock-echo': { input: '0.01', output: '0.02' },
        }),
      }),
    );
    expect(registry.get('claude-sonnet-5-5')).toMatchObject({
      inputPricePerMTok: '1.5',
      outputPricePerMTok: '7.25',
    });
    expect(registry.models()[0]).toMatchObject({ id: MOCK_MODEL_ID, inputPricePerMTok: '0.01' });
    // Untouched entries keep their list prices.
    expect(registry.get('claude-opus-5-5')?.inputPricePerMTok).toBe('4');
  });

  it.each([
    ['not json', /MODEL_PRICES: must be valid JSON/],
    ['{"claude-nope":{"input":"1","output":"2"}}', /MODEL_PRICES\.claude-nope: unknown model/],
    ['{"claude-opus-5-5":{"input":"-1","output":"2"}}', /MODEL_PRICES\.claude-opus-5-5\.input/],
    ['{"claude-opus-5-5":{"input":"1"}}', /MODEL_PRICES\.claude-opus-5-5\.output/],
  ])('rejects MODEL_PRICES=%s', (value, message) => {
    expect(() => config({ MODEL_PRICES: value })).toThrow(ConfigError);
    expect(() => config({ MODEL_PRICES: value })).toThrow(message);
  });

  it('validates the other model settings and applies their defaults', () => {
    const c = config();
    expect(c.anthropic).toEqual({
      apiKey: undefined,
      baseUrl: undefined,
      maxRetries: 2,
      timeoutMs: 600_000,
    });
    expect(c.models).toEqual({ defaultModel: undefined, mockEnabled: true, prices: {} });
    expect(() => config({ DEFAULT_MODEL: 'gpt-9' })).toThrow(
      /DEFAULT_MODEL: must be a built-in model or a MODEL_ROUTES id/,
    );
    expect(() => config({ ANTHROPIC_BASE_URL: 'ftp://x' })).toThrow(/ANTHROPIC_BASE_URL/);
    expect(() => config({ ANTHROPIC_MAX_RETRIES: '-1' })).toThrow(/ANTHROPIC_MAX_RETRIES/);
    expect(() => config({ MOCK_MODEL_ENABLED: 'maybe' })).toThrow(/MOCK_MODEL_ENABLED/);
  });

  it('never echoes the API key in a configuration error', () => {
    const err = thrown(() =>
      config({ ANTHROPIC_API_KEY: 'sk-ant-secret-value', ANTHROPIC_TIMEOUT_MS: '5' }),
    );
    expect(String(err)).toContain('ANTHROPIC_TIMEOUT_MS');
    expect(String(err)).not.toContain('sk-ant-secret-value');
  });
});
