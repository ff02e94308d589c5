import {
  type FinishReason,
  finishReason,
  type ModelChatTurn,
  type ModelContentBlock,
  toolCallOut,
} from '@smartspace/api';
import { z } from 'zod';
import type { CompatEvent, CompatRequest, CompatUsage } from './completion';
import { badRequest } from './errors';

/**
 * OpenAI Chat Completions ⇄ the gateway's Messages-like shape, in one place: the request, the
 * JSON answer, and the stream's chunks.
 */

const TextPart = z.object({ type: z.literal('text'), text: z.string() });
const Text = z.union([z.string(), z.array(TextPart)]);
const ToolCall = z.object({
  id: z.string().min(1).max(256),
  type: z.literal('function'),
  function: z.object({ name: z.string().min(1).max(128), arguments: z.string() }),
});

const Message = z.discriminatedUnion('role', [
  z.object({ role: z.literal('system'), content: Text }),
  z.object({ role: z.literal('developer'), content: Text }),
  z.object({ role: z.literal('user'), content: Text }),
  z.object({
    role: z.literal('assistant'),
    content: Text.nullish(),
    tool_calls: z.array(ToolCall).optional(),
  }),
  z.object({ role: z.literal('tool'), tool_call_id: z.string().min(1).max(256), content: Text }),
]);

export const ChatCompletionBody = z.object({
  model: z.string().min(1).max(200),
  messages: z.array(Message).min(1),
  max_tokens: z.number().int().min(1).nullish(),
  max_completion_tokens: z.number().int().min(1).nullish(),
  stop: z.union([z.string().min(1), z.array(z.string().min(1)).max(16)]).nullish(),
  tools: z
    .array(
      z.object({
        type: z.literal('function'),
        function: z.object({
          name: z
            .string()
            .regex(/^[a-zA-Z0-9_-]{1,64}$/, 'function names are 1-64 of [a-zA-Z0-9_-]'),
          description: z.string().max(10_000).optional(),
          parameters: z.record(z.string(), z.unknown()).optional(),
        }),
      }),
    )
    .max(128)
    .optional(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  n: z.literal(1).nullish(),
  user: z.string().max(256).optional(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
});
export type ChatCompletionBody = z.infer<typeof ChatCompletionBody>;

/** Output cap when the caller sets none (OpenAI's APIs do not require one). */
export const DEFAULT_MAX_TOKENS = 4096;

function text(content: z.infer<typeof Text> | null | undefined): string {
  if (content == null) return '';
  return typeof content === 'string' ? content : content.map((p) => p.text).join('');
}

function parseArguments(call: z.infer<typeof ToolCall>): unknown {
  try {
    return JSON.parse(call.function.arguments === '' ? '{}' : call.function.arguments);
  } catch {
    throw badRequest(`tool call ${call.id}: function.arguments is not valid JSON`);
  }
}

/**
 * System and developer messages become the system prompt; a run of tool messages becomes
 * one user turn of tool_result blocks, as the Messages API expects.
 */
export function toCompatRequest(body: ChatCompletionBody, modelMaxTokens: number): CompatRequest {
  const system: string[] = [];
  const messages: ModelChatTurn[] = [];
  for (const m of body.messages) {
    if (m.role === 'system' || m.role === 'developer') {
      system.push(text(m.content));
    } else if (m.role === 'user') {
      messages.push({ role: 'user', content: text(m.content) });
    } else if (m.role === 'assistant') {
      const blocks: ModelContentBlock[] = [];
      const said = text(m.content);
      if (said !== '') blocks.push({ type: 'text', text: said });
      for (const c of m.tool_calls ?? []) {
        blocks.push({
          type: 'tool_use',
          id: c.id,
          name: c.function.name,
          input: parseArguments(c),
        });
      }
      messages.push({
        role: 'assistant',
        content: m.tool_calls?.length ? blocks : said,
      });
    } else {
      const result: ModelContentBlock = {
        type: 'tool_result',
        toolUseId: m.tool_call_id,
        content: text(m.content),
      };
      const last = messages.at(-1);
      if (
        last?.role === 'user' &&
        Array.isArray(last.content) &&
        last.content.every((b) => b.type === 'tool_result')
      ) {
        last.content.push(result);
      } else {
        messages.push({ role: 'user', content: [result] });
      }
    }
  }
  if (messages.length === 0)
    throw badRequest('messages: at least one non-system message is needed');
  const stop =
    body.stop == null ? undefined : typeof body.stop === 'string' ? [body.stop] : body.stop;
  return {
    model: body.model,
    system: system.length > 0 ? system.join('\n\n') : undefined,
    messages,
    maxOutputTokens:
      body.max_completion_tokens ?? body.max_tokens ?? Math.min(DEFAULT_MAX_TOKENS, modelMaxTokens),
    tools: body.tools?.map((t) => ({
      name: t.function.name,
      description: t.function.description ?? '',
      inputSchema: t.function.parameters ?? { type: 'object', properties: {} },
    })),
    stopSequences: stop,
    temperature: body.temperature ?? undefined,
    topP: body.top_p ?? undefined,
  };
}

/** OpenAI counts cached prompt tokens within prompt_tokens, and the reads apart. */
export function openaiUsage(u: CompatUsage) {
  return {
    prompt_tokens: u.inputTokens,
    completion_tokens: u.outputTokens,
    total_tokens: u.inputTokens + u.outputTokens,
    ...(u.cacheReadTokens ? { prompt_tokens_details: { cached_tokens: u.cacheReadTokens } } : {}),
  };
}

/** The `chat.completion` object for a finished call, from its events in order. */
export function toChatCompletion(
  events: readonly CompatEvent[],
  meta: { id: string; created: number; model: string },
) {
  let content = '';
  const toolCalls: ReturnType<typeof toolCallOut>[] = [];
  let done: Extract<CompatEvent, { type: 'done' }> | undefined;
  for (const ev of events) {
    if (ev.type === 'text') content += ev.text;
    else if (ev.type === 'tool_use') toolCalls.push(toolCallOut(ev));
    else done = ev;
  }
  if (!done) throw new Error('the model call ended without a result');
  return {
    id: meta.id,
    object: 'chat.completion' as const,
    created: meta.created,
    model: meta.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant' as const,
          content: content === '' && toolCalls.length > 0 ? null : content,
          refusal: null,
          ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
        },
        finish_reason: finishReason(done.stopReason),
        logprobs: null,
      },
    ],
    usage: openaiUsage(done.usage),
  };
}

/**
 * Turns events into `chat.completion.chunk`s: a first chunk with the role, text as
 * `delta.content`, each tool call whole in one `delta.tool_calls` entry (its own index), a
 * last chunk with finish_reason, and with include_usage a final chunk of usage and no choices.
 */
export class ChunkEncoder {
  private toolIndex = 0;
  constructor(
    private readonly meta: { id: string; created: number; model: string },
    private readonly includeUsage: boolean,
  ) {}

  private chunk(delta: Record<string, unknown>, finish: FinishReason | null) {
    return {
      id: this.meta.id,
      object: 'chat.completion.chunk' as const,
      created: this.meta.created,
      model: this.meta.model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
      ...(this.includeUsage ? { usage: null } : {}),
    };
  }

  start() {
    return this.chunk({ role: 'assistant', content: '' }, null);
  }

  encode(ev: CompatEvent): unknown[] {
    if (ev.type === 'text') return [this.chunk({ content: ev.text }, null)];
    if (ev.type === 'tool_use') {
      const call = toolCallOut(ev);
      return [this.chunk({ tool_calls: [{ index: this.toolIndex++, ...call }] }, null)];
    }
    const out: unknown[] = [this.chunk({}, finishReason(ev.stopReason))];
    if (this.includeUsage) {
      out.push({
        id: this.meta.id,
        object: 'chat.completion.chunk',
        created: this.meta.created,
        model: this.meta.model,
        choices: [],
        usage: openaiUsage(ev.usage),
      });
    }
    return out;
  }
}
