import type {
  ChatCompletionChunk,
  ChatCompletionMessageParam,
  ChatCompletionMessageToolCall,
  ChatCompletionTool,
} from 'openai/resources/chat/completions';
import type { ChatTurn, ContentBlock, ModelEvent, ToolSpec, Usage } from './provider';
import { ModelError } from './provider';

/**
 * OpenAI Chat Completions ⇄ the gateway's Messages-like shape: messages, tools, tool calls
 * and stop reasons, both ways. The OpenAI-compatible upstream provider speaks through it, and
 * so does the /v1/chat/completions endpoint for the reasons and tool calls it writes.
 */

export type FinishReason = 'stop' | 'length' | 'tool_calls';

/** A gateway stop reason as OpenAI's finish_reason. */
export function finishReason(stopReason: string): FinishReason {
  if (stopReason === 'max_tokens') return 'length';
  if (stopReason === 'tool_use') return 'tool_calls';
  return 'stop';
}

/** An OpenAI finish_reason as a gateway stop reason. */
export function stopReasonOf(finish: string): string {
  if (finish === 'length') return 'max_tokens';
  if (finish === 'tool_calls' || finish === 'function_call') return 'tool_use';
  if (finish === 'content_filter') return 'refusal';
  return 'end_turn';
}

/** A gateway tool call as an OpenAI `tool_calls` entry. */
export function toolCallOut(call: { id: string; name: string; input: unknown }) {
  return {
    id: call.id,
    type: 'function' as const,
    function: { name: call.name, arguments: JSON.stringify(call.input) },
  } satisfies ChatCompletionMessageToolCall;
}

export function toChatTools(tools: readonly ToolSpec[]): ChatCompletionTool[] {
  return tools.map((t) => ({
    type: 'function',
    function: { name: t.name, description: t.description, parameters: t.inputSchema },
  }));
}

/**
 * The system prompt and turns as Chat Completions messages: tool results become `tool`
 * messages (before any text of the same user turn, as they answer the previous calls), tool
 * uses become the assistant message's `tool_calls`.
 */
export function toChatMessages(
  system: string | undefined,
  turns: readonly ChatTurn[],
): ChatCompletionMessageParam[] {
  const out: ChatCompletionMessageParam[] = [];
  if (system) out.push({ role: 'system', content: system });
  for (const turn of turns) {
    if (typeof turn.content === 'string') {
      out.push({ role: turn.role, content: turn.content });
    } else if (turn.role === 'user') {
      out.push(...userBlocks(turn.content));
    } else {
      out.push(assistantBlocks(turn.content));
    }
  }
  return out;
}

function userBlocks(blocks: readonly ContentBlock[]): ChatCompletionMessageParam[] {
  const out: ChatCompletionMessageParam[] = [];
  let text = '';
  for (const b of blocks) {
    if (b.type === 'tool_result') {
      // OpenAI has no error flag on tool results: say so in the content the model reads.
      const content = b.isError ? `Error: ${b.content}` : b.content;
      out.push({ role: 'tool', tool_call_id: b.toolUseId, content });
    } else if (b.type === 'text') {
      text += b.text;
    }
  }
  if (text !== '') out.push({ role: 'user', content: text });
  return out;
}

function assistantBlocks(blocks: readonly ContentBlock[]): ChatCompletionMessageParam {
  let text = '';
  const calls: ChatCompletionMessageToolCall[] = [];
  for (const b of blocks) {
    if (b.type === 'text') text += b.text;
    else if (b.type === 'tool_use') calls.push(toolCallOut(b));
  }
  return {
    role: 'assistant',
    content: text === '' && calls.length > 0 ? null : text,
    ...(calls.length > 0 ? { tool_calls: calls } : {}),
  };
}

interface PartialCall {
  id: string;
  name: string;
  args: string;
}

/**
 * Reads a Chat Completions stream: text as it comes, tool calls whole once their arguments
 * are complete (when the choice finishes), and usage from the last chunk that
 * `stream_options.include_usage` adds.
 */
export class ChunkDecoder {
  private readonly calls = new Map<number, PartialCall>();
  finish: string | null = null;
  usage: Usage | null = null;

  /** The events this chunk completes. */
  push(chunk: ChatCompletionChunk): ModelEvent[] {
    if (chunk.usage) {
      // prompt_tokens includes the cached ones; OpenAI-style caching has no separate writes.
      const cached = chunk.usage.prompt_tokens_details?.cached_tokens ?? 0;
      this.usage = {
        inputTokens: chunk.usage.prompt_tokens,
        outputTokens: chunk.usage.completion_tokens,
        ...(cached > 0 ? { cacheReadTokens: cached } : {}),
      };
    }
    const choice = chunk.choices[0];
    if (!choice) return [];
    const out: ModelEvent[] = [];
    const text = choice.delta?.content;
    if (text) out.push({ type: 'delta', text });
    for (const part of choice.delta?.tool_calls ?? []) this.addCall(part);
    if (choice.finish_reason) {
      this.finish = choice.finish_reason;
      out.push(...this.takeCalls());
    }
    return out;
  }

  private addCall(part: NonNullable<ChatCompletionChunk.Choice['delta']['tool_calls']>[number]) {
    const call = this.calls.get(part.index) ?? { id: '', name: '', args: '' };
    if (part.id) call.id = part.id;
    if (part.function?.name) call.name += part.function.name;
    if (part.function?.arguments) call.args += part.function.arguments;
    this.calls.set(part.index, call);
  }

  private takeCalls(): ModelEvent[] {
    const entries = [...this.calls.entries()].sort(([a], [b]) => a - b);
    this.calls.clear();
    return entries.map(([index, c]) => {
      if (!(c.id && c.name)) {
        throw new ModelError('model.bad_response', `tool call ${index} came without an id or name`);
      }
      let input: unknown;
      try {
        input = c.args.trim() === '' ? {} : JSON.parse(c.args);
      } catch {
        throw new ModelError(
          'model.bad_response',
          `tool call ${c.id} (${c.name}): arguments are not valid JSON`,
        );
      }
      return { type: 'tool_use', id: c.id, name: c.name, input };
    });
  }
}
