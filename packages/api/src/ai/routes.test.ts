import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../config';
import { createModelRegistry } from './registry';
import { collectStream } from './testing/collect';
import { type FakeAnthropic, startFakeAnthropic } from './testing/fake-anthropic';
import { type FakeOpenAI, startFakeOpenAI } from './testing/fake-openai';

// Through loadConfig, so the environment variables themselves are what is tested.
function config(env: Record<string, string> = {}) {
  return loadConfig({
    NODE_ENV: 'test',
    JWT_SECRET: 'routes-test-secret-that-is-long-enough-0123456789',
    ...env,
  });
}

function configError(env: Record<string, string>): string {
  try {
    config(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

const openaiRoute = (over: Record<string, unknown> = {}) => ({
  provider: 'openai',
  upstreamModel: 'gpt-upstream-1',
  baseUrl: 'http://127.0.0.1:9/v1',
  apiKeyEnv: 'HOUSE_LLM_KEY',
  prices: { input: '1', output: '4' },
  contextWindow: 100_000,
  maxOutputTokens: 8_000,
  ...over,
});

describe('MODEL_ROUTES validation', () => {
  it('refuses JSON that does not parse, naming the variable', () => {
    expect(configError({ MODEL_ROUTES: '{"a":' })).toMatch(/MODEL_ROUTES: must be valid JSON/);
  });

  it('refuses an unknown provider, naming the route and field', () => {
    const msg = configError({
      MODEL_ROUTES: JSON.stringify({ house: openaiRoute({ provider: 'cohere' }) }),
      HOUSE_LLM_KEY: 'k',
    });
    expect(msg).toMatch(/MODEL_ROUTES\.house\.provider: /);
  });

  it('refuses start-up when the key variable is unset, naming it and not any value', () => {
    const msg = configError({ MODEL_ROUTES: JSON.stringify({ house: openaiRoute() }) });
    expect(msg).toContain('HOUSE_LLM_KEY: not set (named by MODEL_ROUTES.house.apiKeyEnv)');
  });

  it('refuses bad prices, ids of built-in models, unknown fallbacks and a missing apiKeyEnv', () => {
    const msg = configError({
      MODEL_ROUTES: JSON.stringify({
        house: openaiRoute({ prices: { input: '-1', output: '1e-3' }, fallbacks: ['nowhere'] }),
        'claude-opus-5-5': openaiRoute(),
        bare: openaiRoute({ apiKeyEnv: undefined }),
        self: openaiRoute({ fallbacks: ['self'] }),
      }),
      HOUSE_LLM_KEY: 'k',
    });
    expect(msg).toMatch(/MODEL_ROUTES\.house\.prices\.input: must be a non-negative decimal/);
    expect(msg).toMatch(/MODEL_ROUTES\.house\.prices\.output: must be a non-negative decimal/);
    expect(msg).toMatch(/MODEL_ROUTES\.house\.fallbacks\.0: "nowhere" is not a route/);
    expect(msg).toMatch(/MODEL_ROUTES\.claude-opus-5-5: is a built-in model id/);
    expect(msg).toMatch(/MODEL_ROUTES\.bare\.apiKeyEnv: required for provider openai/);
    expect(msg).toMatch(/MODEL_ROUTES\.self\.fallbacks\.0: a route cannot fall back to itself/);
  });

  it('needs a region and both AWS variables for a Bedrock route', () => {
    const bedrock = {
      provider: 'bedrock',
      upstreamModel: 'anthropic.claude-sonnet-5-5-v1:0',
      awsAccessKeyEnv: 'BEDROCK_ACCESS',
      awsSecretKeyEnv: 'BEDROCK_SECRET',
      prices: { input: '2', output: '10' },
      contextWindow: 200_000,
      maxOutputTokens: 8_000,
    };
    expect(configError({ MODEL_ROUTES: JSON.stringify({ b: bedrock }) })).toMatch(
      /MODEL_ROUTES\.b\.awsRegion: required for provider bedrock/,
    );
    const msg = configError({
      MODEL_ROUTES: JSON.stringify({ b: { ...bedrock, awsRegion: 'eu-west-1' } }),
      BEDROCK_ACCESS: 'AKIA',
    });
    expect(msg).toContain('BEDROCK_SECRET: not set (named by MODEL_ROUTES.b.awsSecretKeyEnv)');
    expect(msg).not.toContain('AKIA');
  });

  it('refuses a key written in place of a variable name', () => {
    const msg = configError({
      MODEL_ROUTES: JSON.stringify({ house: openaiRoute({ apiKeyEnv: 'sk-live abc' }) }),
    });
    expect(msg).toMatch(/house\.apiKeyEnv: must be the NAME of an environment variable/);
    expect(msg).not.toContain('sk-live abc');
  });

  it('reads MODEL_ROUTES_FILE, and refuses an unreadable file or both settings at once', () => {
    const dir = mkdtempSync(join(tmpdir(), 'routes-'));
    const file = join(dir, 'routes.json');
    writeFileSync(file, JSON.stringify({ house: openaiRoute() }));
    const cfg = config({ MODEL_ROUTES_FILE: file, HOUSE_LLM_KEY: 'from-file-key' });
    expect(cfg.modelRoutes).toMatchObject([
      { id: 'house', provider: 'openai', apiKey: 'from-file-key', fallbacks: [] },
    ]);
    expect(configError({ MODEL_ROUTES_FILE: join(dir, 'missing.json') })).toMatch(
      /MODEL_ROUTES_FILE: cannot read .*missing\.json \(ENOENT\)/,
    );
    expect(configError({ MODEL_ROUTES_FILE: file, MODEL_ROUTES: '{}' })).toMatch(
      /MODEL_ROUTES and MODEL_ROUTES_FILE are both set/,
    );
  });

  it('lets DEFAULT_MODEL name a route, and refuses an id that is neither built in nor routed', () => {
    const routes = JSON.stringify({ house: openaiRoute() });
    const cfg = config({ MODEL_ROUTES: routes, HOUSE_LLM_KEY: 'k', DEFAULT_MODEL: 'house' });
    expect(createModelRegistry(cfg).defaultModel).toBe('house');
    const message = configError({
      MODEL_ROUTES: routes,
      HOUSE_LLM_KEY: 'k',
      DEFAULT_MODEL: 'hous',
    });
    expect(message).toMatch(/DEFAULT_MODEL: must be a built-in model or a MODEL_ROUTES id/);
    expect(message).toContain('house');
    expect(configError({ DEFAULT_MODEL: 'house' })).toMatch(/DEFAULT_MODEL/);
  });

  it('leaves the built-in models alone when unset', () => {
    const cfg = config();
    expect(cfg.modelRoutes).toEqual([]);
    const registry = createModelRegistry(cfg);
    expect(registry.models().map((m) => m.id)).toEqual(['mock-echo']);
  });
});

describe('routed models in the registry', () => {
  let openai: FakeOpenAI;
  let anthropic: FakeAnthropic;
  beforeAll(async () => {
    openai = await startFakeOpenAI();
    anthropic = await startFakeAnthropic();
  });
  afterAll(async () => {
    await openai.close();
    await anthropic.close();
  });
  beforeEach(() => {
    openai.reset();
    anthropic.reset();
  });

  function registry() {
    return createModelRegistry(
      config({
        MODEL_ROUTES: JSON.stringify({
          house: openaiRoute({ baseUrl: openai.url, fallbacks: ['proxy-claude'] }),
          'proxy-claude': {
            provider: 'anthropic',
            upstreamModel: 'claude-sonnet-5-5',
            baseUrl: anthropic.url,
            apiKeyEnv: 'PROXY_KEY',
            prices: { input: '2', output: '10', cacheWrite: '2.5', cacheRead: '0.2' },
            contextWindow: 200_000,
            maxOutputTokens: 64_000,
          },
        }),
        HOUSE_LLM_KEY: openai.apiKey,
        PROXY_KEY: anthropic.apiKey,
        ANTHROPIC_MAX_RETRIES: '0',
      }),
      { mockChunkDelayMs: 0 },
    );
  }

  it('lists routed models with their prices beside the built-in ones', () => {
    const r = registry();
    expect(r.models()).toEqual([
      expect.objectContaining({ id: 'mock-echo' }),
      {
        id: 'house',
        provider: 'openai',
        inputPricePerMTok: '1',
        outputPricePerMTok: '4',
        contextWindow: 100_000,
        maxOutputTokens: 8_000,
      },
      {
        id: 'proxy-claude',
        provider: 'anthropic',
        inputPricePerMTok: '2',
        outputPricePerMTok: '10',
        cacheWritePricePerMTok: '2.5',
        cacheReadPricePerMTok: '0.2',
        contextWindow: 200_000,
        maxOutputTokens: 64_000,
      },
    ]);
    expect(r.fallbacks('house')).toEqual(['proxy-claude']);
    expect(r.fallbacks('proxy-claude')).toEqual([]);
    expect(JSON.stringify(r.models())).not.toContain(openai.apiKey);
  });

  it('serves each route through its upstream, by its upstream model name and key', async () => {
    const r = registry();
    openai.script({ kind: 'reply', chunks: ['from openai'] });
    const a = await collectStream(r.provider('house'), {
      model: 'house',
      messages: [{ role: 'user', content: 'hi' }],
      maxOutputTokens: 50,
    });
    expect(a.text).toBe('from openai');
    expect(openai.requests[0]?.body.model).toBe('gpt-upstream-1');

    anthropic.script({ kind: 'reply', chunks: ['from claude'] });
    const b = await collectStream(r.provider('proxy-claude'), {
      model: 'proxy-claude',
      messages: [{ role: 'user', content: 'hi' }],
      maxOutputTokens: 50,
    });
    expect(b.text).toBe('from claude');
    expect(anthropic.requests[0]).toMatchObject({
      model: 'claude-sonnet-5-5',
      apiKey: anthropic.apiKey,
    });
  });
});
