import type { Config } from '../config';
import { createAnthropicProvider } from './anthropic';
import { createBedrockProvider } from './bedrock';
import { createMockProvider } from './mock';
import { DEFAULT_CLAUDE_MODEL, MOCK_MODEL_ID, modelTable } from './models';
import { createOpenAIProvider } from './openai';
import type { ModelInfo, ModelProvider } from './provider';
import { ModelError } from './provider';
import type { ModelRoute } from './routes';

/**
 * Which models this deployment can use, what they cost, and which provider serves each.
 * Claude models need ANTHROPIC_API_KEY; the mock needs MOCK_MODEL_ENABLED (on by default
 * outside production), so a fresh checkout works offline and production never answers
 * with a fake model by accident. MODEL_ROUTES adds models served by upstreams of the
 * deployment's choice, each with its own client, prices and fallbacks.
 */
export interface ModelRegistry {
  /** The models that can be used right now (a key is set / the mock is enabled). */
  models(): ModelInfo[];
  /** Any known model, usable or not, so past usage can still be priced. */
  get(modelId: string): ModelInfo | undefined;
  /** Throws ModelError('model.unavailable') for an unknown or unusable model. */
  provider(modelId: string): ModelProvider;
  /** The routes to try, in order, when `modelId` fails before its first token. */
  fallbacks(modelId: string): string[];
  /** DEFAULT_MODEL if usable, else Claude Sonnet with a key, else the mock. */
  readonly defaultModel: string;
}

export interface ModelRegistryOptions {
  /** Per-chunk pause of the mock model (default 5 ms); tests pass 0. */
  mockChunkDelayMs?: number | undefined;
}

export function createModelRegistry(
  config: Pick<Config, 'anthropic' | 'models'> & { modelRoutes?: readonly ModelRoute[] },
  options: ModelRegistryOptions = {},
): ModelRegistry {
  const routes = config.modelRoutes ?? [];
  const table = [...modelTable(config.models.prices), ...routes.map(routeInfo)];
  const routed = new Map(routes.map((r) => [r.id, routeProvider(r, config.anthropic)]));
  const claude = table.filter((m) => m.provider === 'anthropic');
  const mockInfo = table.find((m) => m.id === MOCK_MODEL_ID);
  const { apiKey } = config.anthropic;

  // Built once: the SDK client keeps its connection pool across requests.
  const anthropic = apiKey
    ? createAnthropicProvider({
        apiKey,
        baseURL: config.anthropic.baseUrl,
        maxRetries: config.anthropic.maxRetries,
        timeoutMs: config.anthropic.timeoutMs,
        models: claude,
      })
    : undefined;
  const mock =
    config.models.mockEnabled && mockInfo
      ? createMockProvider({ model: mockInfo, chunkDelayMs: options.mockChunkDelayMs })
      : undefined;

  const providerOf = (info: ModelInfo): ModelProvider | undefined => {
    if (routed.has(info.id)) return routed.get(info.id);
    return info.provider === 'anthropic' ? anthropic : mock;
  };
  const usable = (id: string | undefined): id is string => {
    const info = id === undefined ? undefined : table.find((m) => m.id === id);
    return info !== undefined && providerOf(info) !== undefined;
  };

  const configured = config.models.defaultModel;
  const preferred = [configured, apiKey ? DEFAULT_CLAUDE_MODEL : undefined, MOCK_MODEL_ID];
  // When nothing is usable (production without a key), name the model a key would unlock,
  // so the first call fails with a message about ANTHROPIC_API_KEY.
  const defaultModel = preferred.find(usable) ?? configured ?? DEFAULT_CLAUDE_MODEL;

  return {
    models: () => table.filter((m) => usable(m.id)).map((m) => ({ ...m })),
    get: (modelId) => {
      const info = table.find((m) => m.id === modelId);
      return info && { ...info };
    },
    provider: (modelId) => {
      const info = table.find((m) => m.id === modelId);
      if (!info) throw new ModelError('model.unavailable', `Unknown model: ${modelId}`);
      const provider = providerOf(info);
      if (provider) return provider;
      throw new ModelError('model.unavailable', unavailableReason(info, routed.has(modelId)));
    },
    fallbacks: (modelId) => [...(routes.find((r) => r.id === modelId)?.fallbacks ?? [])],
    defaultModel,
  };
}

function unavailableReason(info: ModelInfo, isRoute: boolean): string {
  // loadModelRoutes refuses routes without credentials; only a hand-built config gets here.
  if (isRoute) return `${info.id} is routed to ${info.provider} without credentials`;
  return info.provider === 'anthropic'
    ? `${info.id} needs ANTHROPIC_API_KEY, which is not set`
    : `${info.id} is disabled (set MOCK_MODEL_ENABLED=true to enable it)`;
}

/** A route's entry in the model table: its prices and limits, no upstream details. */
function routeInfo(r: ModelRoute): ModelInfo {
  return {
    id: r.id,
    provider: r.provider,
    inputPricePerMTok: r.prices.input,
    outputPricePerMTok: r.prices.output,
    ...(r.prices.cacheWrite ? { cacheWritePricePerMTok: r.prices.cacheWrite } : {}),
    ...(r.prices.cacheRead ? { cacheReadPricePerMTok: r.prices.cacheRead } : {}),
    contextWindow: r.contextWindow,
    maxOutputTokens: r.maxOutputTokens,
  };
}

/** Built once per route: each SDK client keeps its connection pool across requests. */
function routeProvider(r: ModelRoute, defaults: Config['anthropic']): ModelProvider | undefined {
  const common = {
    maxRetries: r.maxRetries ?? defaults.maxRetries,
    timeoutMs: defaults.timeoutMs,
    models: [{ ...routeInfo(r), upstreamModel: r.upstreamModel }],
  };
  if (r.provider === 'anthropic' && r.apiKey) {
    return createAnthropicProvider({ ...common, apiKey: r.apiKey, baseURL: r.baseUrl });
  }
  if (r.provider === 'openai' && r.apiKey) {
    return createOpenAIProvider({
      ...common,
      apiKey: r.apiKey,
      baseURL: r.baseUrl ?? 'https://api.openai.com/v1',
    });
  }
  if (r.provider === 'bedrock' && r.awsRegion && r.awsAccessKey && r.awsSecretKey) {
    return createBedrockProvider({
      ...common,
      awsRegion: r.awsRegion,
      awsAccessKey: r.awsAccessKey,
      awsSecretKey: r.awsSecretKey,
      baseURL: r.baseUrl,
    });
  }
  return undefined;
}
