import { authedProcedure, router } from '../../trpc';

export const modelsRouter = router({
  /** Models usable on this deployment, with prices in USD per million tokens. */
  list: authedProcedure.query(({ ctx }) =>
    ctx.models.models().map((m) => ({
      id: m.id,
      provider: m.provider,
      inputPricePerMTok: m.inputPricePerMTok,
      outputPricePerMTok: m.outputPricePerMTok,
      /** Prompt-cache writes and reads; null: billed at the input price. */
      cacheWritePricePerMTok: m.cacheWritePricePerMTok ?? null,
      cacheReadPricePerMTok: m.cacheReadPricePerMTok ?? null,
      contextWindow: m.contextWindow,
      maxOutputTokens: m.maxOutputTokens,
      default: m.id === ctx.models.defaultModel,
    })),
  ),
});
