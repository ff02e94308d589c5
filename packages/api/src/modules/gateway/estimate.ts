import type { ChatTurn } from '../../ai/provider';

/**
 * Worst-case input tokens for reserving money before the call: ~3 characters per token is
 * pessimistic for English, so the hold rarely falls short of the real charge.
 */
export function estimateInputTokens(system: string | undefined, messages: ChatTurn[]): number {
  let chars = system?.length ?? 0;
  for (const m of messages) chars += m.content.length;
  return Math.ceil(chars / 3) + 8 * (messages.length + 1);
}

/** Output tokens when a call dies before the provider reports usage. */
export function estimateOutputTokens(text: string): number {
  return Math.ceil(text.length / 4);
}
