import { z } from 'zod';
import { bool, httpUrl, int, json, setting } from '../lib/settings';
import { modelPriceOverridesSchema } from './models';

export const aiConfig = {
  anthropic: {
    apiKey: setting({
      env: 'ANTHROPIC_API_KEY',
      schema: z.string().trim().min(1).optional(),
      doc: 'enables the Claude models; unset: only the mock model is offered',
    }),
    baseUrl: setting({
      env: 'ANTHROPIC_BASE_URL',
      schema: httpUrl().optional(),
      doc: 'a gateway or proxy speaking the Messages API; unset: https://api.anthropic.com',
    }),
    maxRetries: setting({
      env: 'ANTHROPIC_MAX_RETRIES',
      schema: int(0, 10),
      default: '2',
      doc: 'retries of 429 / 5xx / connection failures before a reply starts streaming',
    }),
    timeoutMs: setting({
      env: 'ANTHROPIC_TIMEOUT_MS',
      schema: int(1000, 3_600_000),
      default: '600000',
      doc: 'per attempt, until the response starts streaming',
    }),
  },
  models: {
    defaultModel: setting({
      env: 'DEFAULT_MODEL',
      // Checked against the built-in ids and MODEL_ROUTES' ids once the routes are read.
      schema: z.string().trim().min(1).optional(),
      doc: 'model for new chats: a built-in id or a MODEL_ROUTES id; the registry resolves the effective default',
    }),
    mockEnabled: setting({
      env: 'MOCK_MODEL_ENABLED',
      schema: bool.optional(),
      doc: 'offer the offline mock model; unset: true, but false when NODE_ENV=production',
    }),
    routesJson: setting({
      env: 'MODEL_ROUTES',
      schema: z.string().optional(),
      doc: 'JSON: public model id → {provider, upstreamModel, baseUrl, apiKeyEnv, prices, contextWindow, maxOutputTokens, fallbacks}; see "Use SmartSpace as a gateway"',
    }),
    routesFile: setting({
      env: 'MODEL_ROUTES_FILE',
      schema: z.string().optional(),
      doc: 'path of a JSON file holding the routes instead of MODEL_ROUTES',
    }),
    prices: setting({
      env: 'MODEL_PRICES',
      schema: json.pipe(modelPriceOverridesSchema).default({}),
      doc: 'JSON overrides of list prices, USD per million tokens as decimal strings',
    }),
  },
};
