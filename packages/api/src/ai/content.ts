import type { ChatTurn, ToolSpec } from './provider';

/**
 * Helpers for turn content, which is either plain text or content blocks (tool use).
 */

/** What a person would read: the string itself, or the text blocks joined. */
export function contentText(content: ChatTurn['content']): string {
  if (typeof content === 'string') return content;
  let text = '';
  for (const block of content) if (block.type === 'text') text += block.text;
  return text;
}

/**
 * Everything a turn puts into the prompt, as one string for size estimates: text as is,
 * tool calls and results as their JSON (ids, names, inputs and results all cost tokens).
 */
export function contentForCounting(content: ChatTurn['content']): string {
  if (typeof content === 'string') return content;
  let text = '';
  for (const block of content) text += block.type === 'text' ? block.text : JSON.stringify(block);
  return text;
}

/** The tool definitions as the prompt carries them, for size estimates ('' for none). */
export function toolsForCounting(tools: readonly ToolSpec[] | undefined): string {
  return tools && tools.length > 0 ? JSON.stringify(tools) : '';
}
