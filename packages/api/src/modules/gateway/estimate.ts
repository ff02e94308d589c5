import { contentForCounting, toolsForCounting } from '../../ai/content';
import type { ChatTurn, ToolSpec } from '../../ai/provider';

/**
 * The system prompt the API adds when tools are offered (a few hundred tokens, depending
 * on the model and tool_choice); rounded up.
 */
const TOOL_USE_PROMPT_TOKENS = 500;

/**
 * Worst-case input tokens for reserving money before the call: ~3 characters per token is
 * pessimistic for English, so the hold rarely falls short of the real charge. Tool calls,
 * tool results and tool definitions count as their JSON.
 */
export function estimateInputTokens(
  system: string | undefined,
  messages: ChatTurn[],
  tools?: readonly ToolSpec[] | undefined,
): number {
  let chars = (system?.length ?? 0) + toolsForCounting(tools).length;
  for (const m of messages) chars += contentForCounting(m.content).length;
  const toolPrompt = tools && tools.length > 0 ? TOOL_USE_PROMPT_TOKENS : 0;
  return Math.ceil(chars / 3) + 8 * (messages.length + 1) + toolPrompt;
}

/** Output tokens when a call dies before the provider reports usage. */
export function estimateOutputTokens(text: string): number {
  return Math.ceil(text.length / 4);
}
