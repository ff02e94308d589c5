import OpenAI, { APIConnectionError, APIError, APIUserAbortError } from 'openai';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import { contentForCounting, toolsForCounting } from './content';
import { ChunkDecoder, stopReasonOf, toChatMessages, toChatTools } from './openai-shapes';
import type { ModelEvent, ModelInfo, ModelProvider, ModelRequest, Usage } from './provider';
import { ModelError } from './provider';

/**
 * An OpenAI-compatible upstream (OpenAI itself, vLLM, llama.cpp, Ollama, LiteLLM…): Chat
 * Completions, streamed, through the official SDK, with usage from the final chunk that
 * `stream_options.include_usage` asks for. As with the Claude adapter, the SDK retries before
 * the stream starts and nothing is retried once text has flowed.
 */

export interface OpenAIModel extends ModelInfo {
  /** The model name the upstream knows it by. */
  upstreamModel: string;
}

export interface OpenAIProviderOptions {
  apiKey: string;
  baseURL: string;
  maxRetries?: number | undefined;
  timeoutMs?: number | undefined;
  models: OpenAIModel[];
}

export function createOpenAIProvider(options: OpenAIProviderOptions): ModelProvider {
  const models = options.models.map((m) => ({ ...m }));
  const client = new OpenAI({
    apiKey: options.apiKey,
    // Explicit, so the SDK reads no OPENAI_* variables itself.
    baseURL: options.baseURL,
    organization: null,
    project: null,
    maxRetries: options.maxRetries ?? 2,
    timeout: options.timeoutMs ?? 600_000,
  });
  return {
    models: () => models.map(({ upstreamModel: _, ...m }) => m),
    stream: (req) => streamChat(client, models, req),
  };
}

async function* streamChat(
  client: OpenAI,
  models: readonly OpenAIModel[],
  req: ModelRequest,
): AsyncGenerator<ModelEvent> {
  const model = models.find((m) => m.id === req.model);
  if (!model) throw new ModelError('model.unavailable', `Unknown model: ${req.model}`);
  const { signal } = req;
  if (signal?.aborted) throw cancelled();

  let chunks: AsyncIterable<ChatCompletionChunk>;
  try {
    chunks = await client.chat.completions.create(
      {
        model: model.upstreamModel,
        messages: toChatMessages(req.system, req.messages),
        max_completion_tokens: req.maxOutputTokens,
        ...(req.tools?.length ? { tools: toChatTools(req.tools) } : {}),
        // Chat Completions has no top_k: it is left out rather than refused.
        ...(req.temperature !== undefined ? { temperature: req.temperature } : {}),
        ...(req.topP !== undefined ? { top_p: req.topP } : {}),
        ...(req.stopSequences?.length ? { stop: req.stopSequences } : {}),
        stream: true,
        stream_options: { include_usage: true },
      },
      { signal },
    );
  } catch (err) {
    throw toModelError(err, signal);
  }

  const decoder = new ChunkDecoder();
  let text = '';
  try {
    for await (const chunk of chunks) {
      if (signal?.aborted) throw cancelled();
      for (const ev of decoder.push(chunk)) {
        if (ev.type === 'delta') text += ev.text;
        yield ev;
      }
    }
  } catch (err) {
    throw toStreamError(err, signal);
  }
  if (signal?.aborted) throw cancelled();
  if (decoder.finish === null) {
    throw new ModelError(
      'model.stream_interrupted',
      'OpenAI-compatible stream ended before a finish_reason',
      true,
    );
  }
  yield {
    type: 'done',
    usage: decoder.usage ?? estimatedUsage(req, text),
    stopReason: stopReasonOf(decoder.finish),
  };
}

/**
 * Some compatible servers ignore include_usage. Their calls are billed at about four
 * characters per token rather than free.
 */
function estimatedUsage(req: ModelRequest, text: string): Usage {
  const prompt = [
    req.system ?? '',
    toolsForCounting(req.tools),
    ...req.messages.map((m) => contentForCounting(m.content)),
  ].join('');
  return { inputTokens: Math.ceil(prompt.length / 4), outputTokens: Math.ceil(text.length / 4) };
}

function cancelled(cause?: unknown): ModelError {
  const error = new ModelError('model.cancelled', 'The request was cancelled');
  if (cause !== undefined) error.cause = cause;
  return error;
}

/** What the OpenAI SDK throws, as a ModelError (after the SDK's own retries). */
export function toModelError(err: unknown, signal: AbortSignal | undefined): ModelError {
  if (err instanceof ModelError) return err;
  if (signal?.aborted || err instanceof APIUserAbortError) return cancelled(err);
  let error: ModelError;
  if (err instanceof APIConnectionError) {
    error = new ModelError(
      'model.stream_interrupted',
      `OpenAI-compatible API unreachable: ${err.message}`,
      true,
    );
  } else if (err instanceof APIError) {
    const [code, retryable] = classify(err.status, err.type ?? err.code ?? undefined);
    const status = err.status === undefined ? '' : ` (${err.status})`;
    const detail = (err.error as { message?: string } | undefined)?.message ?? err.message;
    error = new ModelError(code, `OpenAI-compatible API${status}: ${detail}`, retryable);
  } else {
    error = new ModelError('model.failed', `OpenAI-compatible API call failed: ${describe(err)}`);
  }
  error.cause = err;
  return error;
}

function toStreamError(err: unknown, signal: AbortSignal | undefined): ModelError {
  if (err instanceof ModelError || err instanceof APIError || signal?.aborted) {
    return toModelError(err, signal);
  }
  if (err instanceof SyntaxError) {
    const error = new ModelError('model.bad_response', `OpenAI-compatible stream: ${err.message}`);
    error.cause = err;
    return error;
  }
  const error = new ModelError(
    'model.stream_interrupted',
    `OpenAI-compatible stream interrupted: ${describe(err)}`,
    true,
  );
  error.cause = err;
  return error;
}

function classify(
  status: number | undefined,
  type: string | undefined,
): [ModelError['code'], boolean] {
  if (status === 429) return ['model.rate_limited', true];
  if (status !== undefined && status >= 500) return ['model.overloaded', true];
  if (status === 400 || status === 413 || status === 422) return ['model.bad_request', false];
  if (status === 401 || status === 403) return ['model.auth_failed', false];
  if (status === 404) return ['model.unavailable', false];
  if (status === 408 || status === 409) return ['model.failed', true];
  // A mid-stream error object has no status: only its type tells.
  if (type === 'rate_limit_exceeded' || type === 'rate_limit_error') {
    return ['model.rate_limited', true];
  }
  if (type === 'overloaded_error' || type === 'server_error') return ['model.overloaded', true];
  return ['model.failed', false];
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
  return `${err.message}${cause}`;
}
