import { randomUUID } from 'node:crypto';
import type { ModelChatTurn, ModelContentBlock } from '@smartspace/api';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { authenticate } from './auth';
import {
  type CompatEvent,
  type CompatRequest,
  type CompatUsage,
  checkModel,
  complete,
  prepend,
} from './completion';
import type { Deps } from './deps';
import { anthropicErrorBody, toCompatError, unexpected } from './errors';
import { disconnectSignal, SseWriter } from './sse';
import { parseBody } from './validate';

/**
 * The Anthropic Messages API: POST /v1/messages, JSON or streamed (SSE), and
 * POST /v1/messages/count_tokens.
 */

/** Prompt caching: the prompt up to the marked block is cached upstream. */
const CacheControl = z.object({
  type: z.literal('ephemeral'),
  ttl: z.enum(['5m', '1h']).optional(),
});
const cache_control = CacheControl.nullish();
const TextBlock = z.object({ type: z.literal('text'), text: z.string(), cache_control });
const ToolUseBlock = z.object({
  type: z.literal('tool_use'),
  id: z.string().min(1).max(256),
  name: z.string().min(1).max(128),
  input: z.record(z.string(), z.unknown()),
  cache_control,
});
const ToolResultBlock = z.object({
  type: z.literal('tool_result'),
  tool_use_id: z.string().min(1).max(256),
  content: z.union([z.string(), z.array(TextBlock)]).optional(),
  is_error: z.boolean().optional(),
  cache_control,
});
const Block = z.discriminatedUnion('type', [TextBlock, ToolUseBlock, ToolResultBlock]);

export const MessagesBody = z.object({
  model: z.string().min(1).max(200),
  max_tokens: z.number().int().min(1),
  messages: z
    .array(
      z.object({
        role: z.enum(['user', 'assistant']),
        content: z.union([z.string(), z.array(Block).min(1)]),
      }),
    )
    .min(1),
  system: z.union([z.string(), z.array(TextBlock)]).optional(),
  tools: z
    .array(
      z.object({
        name: z.string().regex(/^[a-zA-Z0-9_-]{1,128}$/, 'tool names are 1-128 of [a-zA-Z0-9_-]'),
        description: z.string().max(10_000).optional(),
        input_schema: z.looseObject({ type: z.literal('object') }),
        cache_control,
      }),
    )
    .max(128)
    .optional(),
  stop_sequences: z.array(z.string().min(1).max(200)).max(16).optional(),
  temperature: z.number().min(0).max(1).optional(),
  top_p: z.number().min(0).max(1).optional(),
  top_k: z.number().int().min(0).optional(),
  metadata: z.object({ user_id: z.string().max(256).nullish() }).optional(),
  stream: z.boolean().optional(),
});
export type MessagesBody = z.infer<typeof MessagesBody>;

/** count_tokens takes the prompt alone; other fields are ignored, as the API does. */
const CountTokensBody = MessagesBody.pick({
  model: true,
  messages: true,
  system: true,
  tools: true,
});

function joinText(blocks: string | { text: string }[] | undefined): string {
  if (blocks === undefined) return '';
  return typeof blocks === 'string' ? blocks : blocks.map((b) => b.text).join('\n');
}

function cacheOf(c: z.infer<typeof cache_control>) {
  return c ? { cacheControl: c.ttl ? { type: c.type, ttl: c.ttl } : { type: c.type } } : {};
}

function toBlock(b: z.infer<typeof Block>): ModelContentBlock {
  const cache = cacheOf(b.cache_control);
  if (b.type === 'text') return { type: 'text', text: b.text, ...cache };
  if (b.type === 'tool_use') {
    return { type: 'tool_use', id: b.id, name: b.name, input: b.input, ...cache };
  }
  return {
    type: 'tool_result',
    toolUseId: b.tool_use_id,
    content: joinText(b.content),
    ...(b.is_error ? { isError: true } : {}),
    ...cache,
  };
}

/**
 * System blocks are joined into one prompt; a cache mark on any of them caches the prompt
 * through the end of the system prompt (the last mark's lifetime applies).
 */
function systemCache(system: MessagesBody['system']) {
  if (system === undefined || typeof system === 'string') return {};
  const marked = system.filter((b) => b.cache_control).at(-1);
  return marked ? { systemCacheControl: cacheOf(marked.cache_control).cacheControl } : {};
}

export function toCompatRequest(body: MessagesBody): CompatRequest {
  const messages: ModelChatTurn[] = body.messages.map((m) => ({
    role: m.role,
    content: typeof m.content === 'string' ? m.content : m.content.map(toBlock),
  }));
  const system = joinText(body.system);
  return {
    model: body.model,
    system: system === '' ? undefined : system,
    ...(system === '' ? {} : systemCache(body.system)),
    messages,
    maxOutputTokens: body.max_tokens,
    tools: body.tools?.map((t) => ({
      name: t.name,
      description: t.description ?? '',
      inputSchema: t.input_schema,
      ...cacheOf(t.cache_control),
    })),
    stopSequences: body.stop_sequences,
    temperature: body.temperature,
    topP: body.top_p,
    topK: body.top_k,
  };
}

type Events = AsyncGenerator<CompatEvent>;

/**
 * Usage as the Messages API reports it: input_tokens excludes the prompt-cache writes and
 * reads, which come as their own counts when there were any.
 */
export function anthropicUsage(u: CompatUsage) {
  const write = u.cacheWriteTokens ?? 0;
  const read = u.cacheReadTokens ?? 0;
  return {
    input_tokens: Math.max(0, u.inputTokens - write - read),
    output_tokens: u.outputTokens,
    ...(write > 0 || read > 0
      ? { cache_creation_input_tokens: write, cache_read_input_tokens: read }
      : {}),
  };
}

async function respondJson(reply: FastifyReply, events: Events, id: string, model: string) {
  const content: unknown[] = [];
  let text: { type: 'text'; text: string } | null = null;
  let done: Extract<CompatEvent, { type: 'done' }> | null = null;
  for await (const ev of events) {
    if (ev.type === 'text') {
      if (!text) {
        text = { type: 'text', text: '' };
        content.push(text);
      }
      text.text += ev.text;
    } else if (ev.type === 'tool_use') {
      text = null;
      content.push({ type: 'tool_use', id: ev.id, name: ev.name, input: ev.input });
    } else {
      done = ev;
    }
  }
  if (!done) throw new Error('the model call ended without a result');
  return reply.send({
    id,
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: done.stopReason,
    stop_sequence: done.stopSequence,
    usage: anthropicUsage(done.usage),
  });
}

/**
 * Anthropic's event order: message_start, then per block content_block_start, deltas,
 * content_block_stop (a ping after the first start), then message_delta (stop reason and
 * final usage) and message_stop. Tool calls arrive whole, so each is one input_json_delta.
 */
async function respondStream(opts: {
  reply: FastifyReply;
  events: Events;
  id: string;
  model: string;
  signal: AbortSignal;
  log: FastifyBaseLogger;
}) {
  const { events } = opts;
  const sse = new SseWriter(opts.reply);
  let index = -1;
  let textOpen = false;
  let pinged = false;
  const start = async (block: unknown) => {
    index++;
    await sse.event('content_block_start', {
      type: 'content_block_start',
      index,
      content_block: block,
    });
    if (!pinged) {
      pinged = true;
      await sse.event('ping', { type: 'ping' });
    }
  };
  const stop = () => sse.event('content_block_stop', { type: 'content_block_stop', index });
  const delta = (d: unknown) =>
    sse.event('content_block_delta', { type: 'content_block_delta', index, delta: d });

  try {
    await sse.event('message_start', {
      type: 'message_start',
      message: {
        id: opts.id,
        type: 'message',
        role: 'assistant',
        model: opts.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 0, output_tokens: 0 },
      },
    });
    for await (const ev of events) {
      if (ev.type === 'text') {
        if (!textOpen) {
          await start({ type: 'text', text: '' });
          textOpen = true;
        }
        await delta({ type: 'text_delta', text: ev.text });
        continue;
      }
      if (textOpen) {
        await stop();
        textOpen = false;
      }
      if (ev.type === 'tool_use') {
        await start({ type: 'tool_use', id: ev.id, name: ev.name, input: {} });
        await delta({ type: 'input_json_delta', partial_json: JSON.stringify(ev.input) });
        await stop();
      } else {
        await sse.event('message_delta', {
          type: 'message_delta',
          delta: { stop_reason: ev.stopReason, stop_sequence: ev.stopSequence },
          usage: anthropicUsage(ev.usage),
        });
        await sse.event('message_stop', { type: 'message_stop' });
      }
    }
  } catch (err) {
    // A client that left needs no error; the call was settled when it stopped.
    if (!opts.signal.aborted) {
      const e = toCompatError(err) ?? unexpected(err, opts.log);
      await sse.event('error', anthropicErrorBody(e));
    }
  } finally {
    sse.end();
  }
}

/** Request bodies up to 1 MiB: prompts are text; a larger body is refused unread (413). */
export const MESSAGES_BODY_LIMIT = 1024 * 1024;

export function anthropicRoutes(app: FastifyInstance, deps: Deps): void {
  app.post('/v1/messages', { bodyLimit: MESSAGES_BODY_LIMIT }, async (req, reply) => {
    const who = await authenticate(deps, req, 'member');
    const body = parseBody(MessagesBody, req.body);
    checkModel(deps, body.model, body.max_tokens);
    const signal = disconnectSignal(reply);
    const events = complete(deps, who, toCompatRequest(body), signal);
    const id = `msg_${randomUUID().replaceAll('-', '')}`;
    if (!body.stream) return respondJson(reply, events, id, body.model);
    // Refusals (policy, limits, budget) come before the first event: answer them with a
    // status, not inside a stream that already said 200.
    const first = await events.next();
    return respondStream({
      reply,
      events: prepend(first, events),
      id,
      model: body.model,
      signal,
      log: req.log,
    });
  });

  // Free and no usage row; the policy's allowed models and its rate apply (gateway.countTokens).
  app.post('/v1/messages/count_tokens', { bodyLimit: MESSAGES_BODY_LIMIT }, async (req, reply) => {
    const who = await authenticate(deps, req, 'member');
    const body = parseBody(CountTokensBody, req.body);
    checkModel(deps, body.model, 1);
    const prompt = toCompatRequest({ ...body, max_tokens: 1 });
    const inputTokens = await deps.gateway.countTokens({
      projectId: who.projectId,
      userId: who.user.id,
      keyId: who.keyId,
      model: prompt.model,
      system: prompt.system,
      systemCacheControl: prompt.systemCacheControl,
      messages: prompt.messages,
      tools: prompt.tools,
      signal: disconnectSignal(reply),
    });
    return { input_tokens: inputTokens };
  });
}
