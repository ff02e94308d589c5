import Anthropic from '@anthropic-ai/sdk';
import type { RawMessageStreamEvent } from '@anthropic-ai/sdk/resources/messages';
import { cancelled, toModelError, toStreamError } from './anthropic-errors';
import { ToolInputs, toMessageParam, toTool } from './anthropic-tools';
import type {
  ModelEvent,
  ModelInfo,
  ModelProvider,
  ModelRequest,
  TokenCountRequest,
  Usage,
} from './provider';
import { ModelError } from './provider';

/**
 * The Claude adapter: the Messages API, streamed, through the official SDK. The SDK retries
 * 429/5xx/connection failures itself (with backoff, honouring `retry-after`) before the
 * stream starts; once text has flowed nothing is retried, because the caller already holds
 * it. Anything short of `message_stop` is an interruption, never a quiet truncation. Tool
 * calls are yielded whole, when their block ends, between the text deltas around them.
 */

export interface AnthropicProviderOptions {
  apiKey: string;
  /** Defaults to https://api.anthropic.com; tests point it at the fake server. */
  baseURL?: string | undefined;
  /** SDK retries before the stream starts (default 2). */
  maxRetries?: number | undefined;
  /** Per attempt, until the response headers arrive (default 10 minutes). */
  timeoutMs?: number | undefined;
  /** The Claude models this provider serves, with their prices. */
  models: AnthropicModel[];
}

export interface AnthropicModel extends ModelInfo {
  /** The name the upstream knows the model by, when it differs from the public id. */
  upstreamModel?: string | undefined;
}

const DEFAULT_BASE_URL = 'https://api.anthropic.com';

export function createAnthropicProvider(options: AnthropicProviderOptions): ModelProvider {
  const client = new Anthropic({
    apiKey: options.apiKey,
    // Explicit, so the SDK does not fall back to reading ANTHROPIC_BASE_URL itself:
    // config.ts is the one place that reads the environment.
    baseURL: options.baseURL ?? DEFAULT_BASE_URL,
    maxRetries: options.maxRetries ?? 2,
    timeout: options.timeoutMs ?? 600_000,
  });
  return messagesProvider(client, options.models, { countTokens: true });
}

/** Any client of the Messages API: Anthropic's own, or Bedrock's (same SDK, other transport). */
export interface MessagesClient {
  messages: Pick<Anthropic['messages'], 'create'> &
    Partial<Pick<Anthropic['messages'], 'countTokens'>>;
}

/**
 * A provider streaming through `client`, for the models listed; it counts tokens through
 * the upstream's count_tokens when `countTokens` is on (Anthropic's API has it, Bedrock's
 * invoke endpoints do not).
 */
export function messagesProvider(
  client: MessagesClient,
  list: AnthropicModel[],
  options: { countTokens?: boolean } = {},
): ModelProvider {
  const models = list.map((m) => ({ ...m }));
  const count = client.messages.countTokens?.bind(client.messages);
  return {
    models: () => models.map(({ upstreamModel: _, ...m }) => m),
    stream: (req) => streamMessages(client, models, req),
    ...(options.countTokens && count
      ? { countTokens: (req: TokenCountRequest) => countMessages(count, models, req) }
      : {}),
  };
}

async function countMessages(
  count: Anthropic['messages']['countTokens'],
  models: readonly AnthropicModel[],
  req: TokenCountRequest,
): Promise<number> {
  const model = models.find((m) => m.id === req.model);
  if (!model) throw new ModelError('model.unavailable', `Unknown Claude model: ${req.model}`);
  try {
    const result = await count(
      {
        model: model.upstreamModel ?? req.model,
        ...systemParam(req),
        messages: req.messages.map(toMessageParam),
        ...(req.tools?.length ? { tools: req.tools.map(toTool) } : {}),
      },
      { signal: req.signal },
    );
    return result.input_tokens;
  } catch (err) {
    throw toModelError(err, req.signal);
  }
}

async function* streamMessages(
  client: MessagesClient,
  models: readonly AnthropicModel[],
  req: ModelRequest,
): AsyncGenerator<ModelEvent> {
  const model = models.find((m) => m.id === req.model);
  if (!model) throw new ModelError('model.unavailable', `Unknown Claude model: ${req.model}`);
  const { signal } = req;
  if (signal?.aborted) throw cancelled();

  let events: AsyncIterable<RawMessageStreamEvent>;
  try {
    events = await client.messages.create(
      {
        model: model.upstreamModel ?? req.model,
        max_tokens: req.maxOutputTokens,
        ...systemParam(req),
        messages: req.messages.map(toMessageParam),
        ...(req.tools?.length ? { tools: req.tools.map(toTool) } : {}),
        ...samplingParams(req),
        stream: true,
      },
      // The SDK links this signal to the fetch, so aborting closes the upstream connection
      // whether we are waiting for headers, sleeping before a retry, or reading the body.
      { signal },
    );
  } catch (err) {
    throw toModelError(err, signal);
  }

  const usage: Usage = { inputTokens: 0, outputTokens: 0 };
  let stopReason: string | null = null;
  let stopSequence: string | null = null;
  let stopped = false;
  const tools = new ToolInputs();
  try {
    for await (const event of events) {
      // Events already buffered are not worth delivering once the caller has given up.
      if (signal?.aborted) throw cancelled();
      switch (event.type) {
        case 'message_start': {
          const u = event.message.usage;
          Object.assign(usage, promptUsage(u));
          usage.outputTokens = u.output_tokens;
          break;
        }
        case 'content_block_start':
          if (event.content_block.type === 'tool_use') {
            tools.start(event.index, event.content_block.id, event.content_block.name);
          }
          break;
        case 'content_block_delta':
          // Thinking and signature deltas are not part of the reply.
          if (event.delta.type === 'text_delta' && event.delta.text !== '') {
            yield { type: 'delta', text: event.delta.text };
          } else if (event.delta.type === 'input_json_delta') {
            tools.append(event.index, event.delta.partial_json);
          }
          break;
        case 'content_block_stop': {
          const call = tools.stop(event.index);
          if (call) yield call;
          break;
        }
        case 'message_delta':
          // Counts in message_delta are cumulative totals, not increments.
          stopReason = event.delta.stop_reason;
          stopSequence = event.delta.stop_sequence;
          usage.outputTokens = event.usage.output_tokens;
          // Older API versions leave input counts out of message_delta entirely.
          if (typeof event.usage.input_tokens === 'number') {
            Object.assign(usage, promptUsage(event.usage));
          }
          break;
        case 'message_stop':
          stopped = true;
          tools.check(stopReason);
          break;
      }
    }
  } catch (err) {
    throw toStreamError(err, signal);
  }
  // The SDK ends the iteration quietly when its request is aborted, so check ourselves.
  if (signal?.aborted) throw cancelled();
  if (!stopped) {
    throw new ModelError(
      'model.stream_interrupted',
      'Anthropic stream ended before message_stop',
      true,
    );
  }
  yield {
    type: 'done',
    usage,
    stopReason: stopReason ?? 'end_turn',
    ...(stopSequence ? { stopSequence } : {}),
  };
}

/** The request's sampling fields in Messages API terms; unset ones are left out. */
export function samplingParams(req: ModelRequest): {
  temperature?: number;
  top_p?: number;
  top_k?: number;
  stop_sequences?: string[];
} {
  return {
    ...(req.temperature !== undefined ? { temperature: req.temperature } : {}),
    ...(req.topP !== undefined ? { top_p: req.topP } : {}),
    ...(req.topK !== undefined ? { top_k: req.topK } : {}),
    ...(req.stopSequences?.length ? { stop_sequences: req.stopSequences } : {}),
  };
}

/** The system prompt: a plain string, or one text block carrying the cache mark. */
function systemParam(req: Pick<ModelRequest, 'system' | 'systemCacheControl'>) {
  if (!req.system) return {};
  if (!req.systemCacheControl) return { system: req.system };
  return {
    system: [
      { type: 'text' as const, text: req.system, cache_control: { ...req.systemCacheControl } },
    ],
  };
}

/**
 * All prompt tokens as inputTokens, with the cache writes and reads among them counted
 * apart (when there are any) so they can be priced at their own rates.
 */
function promptUsage(u: {
  input_tokens: number | null;
  cache_creation_input_tokens: number | null;
  cache_read_input_tokens: number | null;
}): Pick<Usage, 'inputTokens' | 'cacheWriteTokens' | 'cacheReadTokens'> {
  const write = u.cache_creation_input_tokens ?? 0;
  const read = u.cache_read_input_tokens ?? 0;
  return {
    inputTokens: (u.input_tokens ?? 0) + write + read,
    ...(write > 0 ? { cacheWriteTokens: write } : {}),
    ...(read > 0 ? { cacheReadTokens: read } : {}),
  };
}
