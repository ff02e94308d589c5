import { contentForCounting } from '../../ai/content';
import type { ChatTurn } from '../../ai/provider';

/** ~4 characters per token for English; deliberately pessimistic per message. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4) + 4;
}

/**
 * Keeps the newest turns that fit in the model's context window after the system prompt
 * and the room reserved for the reply. The history handed to the model starts with a user
 * turn (the Messages API requires it).
 */
export function fitHistory(opts: {
  turns: ChatTurn[];
  system: string;
  contextWindow: number;
  maxOutputTokens: number;
}): ChatTurn[] {
  let budget = opts.contextWindow - opts.maxOutputTokens - estimateTokens(opts.system);
  const kept: ChatTurn[] = [];
  for (let i = opts.turns.length - 1; i >= 0; i--) {
    const turn = opts.turns[i];
    if (!turn) continue;
    const cost = estimateTokens(contentForCounting(turn.content));
    if (cost > budget) break;
    budget -= cost;
    kept.unshift(turn);
  }
  while (kept[0] && kept[0].role !== 'user') kept.shift();
  return kept;
}
