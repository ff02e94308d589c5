import { z } from 'zod';
import type { ModelInfo } from './provider';

/**
 * The model price table: what each model costs, so usage can be billed without asking the
 * provider. List prices in USD per million tokens (Anthropic's published rates, checked
 * November 2026), kept as decimal strings so money never passes through floats.
 * `MODEL_PRICES` overrides them per deployment (negotiated rates, a price change before
 * the next release).
 */

export const MOCK_MODEL_ID = 'mock-echo';

/** The default Claude model when an API key is set and `DEFAULT_MODEL` is not. */
export const DEFAULT_CLAUDE_MODEL = 'claude-sonnet-5-5';

const MTOK_1M = 1_000_000;

// Prompt-cache prices are the list rates for 5-minute writes (1.25x input) and reads (0.1x).
// Only models with one flat price per direction are listed: `ModelInfo` cannot express
// Claude Haiku 5.5's price tiers by prompt length, so Haiku 4.5 stands for the small tier.
// Models past their retirement date answer 404, so none that are retired or retiring are
// listed (Claude Sonnet 4.5 retires on 2026-11-30).
const BUILTIN_MODELS: readonly ModelInfo[] = Object.freeze([
  {
    id: 'claude-fable-5-1',
    provider: 'anthropic',
    inputPricePerMTok: '10',
    outputPricePerMTok: '50',
    cacheWritePricePerMTok: '12.5',
    cacheReadPricePerMTok: '1',
    contextWindow: MTOK_1M,
    maxOutputTokens: 128_000,
  },
  {
    id: 'claude-opus-5-5',
    provider: 'anthropic',
    inputPricePerMTok: '4',
    outputPricePerMTok: '20',
    cacheWritePricePerMTok: '5',
    cacheReadPricePerMTok: '0.4',
    contextWindow: MTOK_1M,
    maxOutputTokens: 128_000,
  },
  {
    id: DEFAULT_CLAUDE_MODEL,
    provider: 'anthropic',
    inputPricePerMTok: '2',
    outputPricePerMTok: '10',
    cacheWritePricePerMTok: '2.5',
    cacheReadPricePerMTok: '0.2',
    contextWindow: MTOK_1M,
    maxOutputTokens: 128_000,
  },
  {
    id: 'claude-haiku-4-5',
    provider: 'anthropic',
    inputPricePerMTok: '1',
    outputPricePerMTok: '5',
    cacheWritePricePerMTok: '1.25',
    cacheReadPricePerMTok: '0.1',
    contextWindow: 200_000,
    maxOutputTokens: 64_000,
  },
  {
    id: MOCK_MODEL_ID,
    provider: 'mock',
    inputPricePerMTok: '0',
    outputPricePerMTok: '0',
    contextWindow: 200_000,
    maxOutputTokens: 64_000,
  },
]);

export const MODEL_IDS: readonly string[] = BUILTIN_MODELS.map((m) => m.id);

// Digits only: "1e-7" or "-1" in a price table is a typo, not a price.
const decimal = /^\d+(\.\d+)?$/;
const price = z
  .union([z.string(), z.number()])
  .transform(String)
  .pipe(z.string().regex(decimal, 'must be a non-negative decimal such as "3" or "0.25"'));

/**
 * `MODEL_PRICES`: `{"<model id>": {"input": "3", "output": "15"}}`, known ids only; optional
 * `cacheWrite` / `cacheRead` (unset: the input price).
 */
export const modelPriceOverridesSchema = z
  .record(
    z.string(),
    z.strictObject({
      input: price,
      output: price,
      cacheWrite: price.optional(),
      cacheRead: price.optional(),
    }),
  )
  .superRefine((prices, ctx) => {
    for (const id of Object.keys(prices)) {
      if (!MODEL_IDS.includes(id)) {
        ctx.addIssue({
          code: 'custom',
          path: [id],
          message: `unknown model (known: ${MODEL_IDS.join(', ')})`,
        });
      }
    }
  });

export type ModelPriceOverrides = z.output<typeof modelPriceOverridesSchema>;

/** The table with `overrides` applied; fresh objects, so callers cannot alter the table. */
export function modelTable(overrides: ModelPriceOverrides = {}): ModelInfo[] {
  return BUILTIN_MODELS.map((m) => {
    const o = overrides[m.id];
    if (!o) return { ...m };
    // New prices replace the list cache rates too, which were derived from the old input.
    const { cacheWritePricePerMTok: _w, cacheReadPricePerMTok: _r, ...base } = m;
    return {
      ...base,
      inputPricePerMTok: o.input,
      outputPricePerMTok: o.output,
      ...(o.cacheWrite ? { cacheWritePricePerMTok: o.cacheWrite } : {}),
      ...(o.cacheRead ? { cacheReadPricePerMTok: o.cacheRead } : {}),
    };
  });
}
