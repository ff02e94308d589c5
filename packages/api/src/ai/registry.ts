import type { Config } from '../config';
import { createAnthropicProvider } from './anthropic';
import { createMockProvider } from './mock';
import { DEFAULT_CLAUDE_MODEL, MOCK_MODEL_ID, modelTable } from './models';
import type { ModelInfo, ModelProvider } from './provider';
import { ModelError } from './provider';

/**
 * Which models this deployment can use, what they cost, and which provider serves each.
 * Claude models need ANTHROPIC_API_KEY; the mock needs MOCK_MODEL_ENABLED (on by default
 * outside production), so a fresh checkout works offline and production never answers
 * with a fake model by accident.
 */
export interface ModelRegistry {
  /** The models that can be used right now (a key is set / the mock is enabled). */
  models(): ModelInfo[];
  /** Any known model, usable or not, so past usage can still be priced. */
  get(modelId: string): ModelInfo | undefined;
  /** Throws ModelError('model.unavailable') for an unknown or unusable model. */
  provider(modelId: string): ModelProvider;
  /** DEFAULT_MODEL if usable, else Claude Sonnet with a key, else the mock. */
  readonly defaultModel: string;
}

export interface ModelRegistryOptions {
  /** Per-chunk pause of the mock model (default 5 ms); tests pass 0. */
  mockChunkDelayMs?: number | undefined;
}

export function createModelRegistry(
  config: Pick<Config, 'anthropic' | 'models'>,
  options: ModelRegistryOptions = {},
): ModelRegistry {
  const table = modelTable(config.models.prices);
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

  const providerOf = (info: ModelInfo): ModelProvider | undefined =>
    info.provider === 'anthropic' ? anthropic : mock;
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
      throw new ModelError(
        'model.unavailable',
        info.provider === 'anthropic'
          ? `${modelId} needs ANTHROPIC_API_KEY, which is not set`
          : `${modelId} is disabled (set MOCK_MODEL_ENABLED=true to enable it)`,
      );
    },
    defaultModel,
  };
}
