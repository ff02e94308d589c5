/**
 * The one interface every model call goes through (chat now, agent runs and the gateway
 * later). Adapters turn a provider's wire protocol into these events.
 */
import type { ModelErrorCode } from './ai.errors';

/**
 * Anthropic prompt caching: the prompt up to and including the marked block is cached.
 * Providers without explicit caching ignore it.
 */
export interface CacheControl {
  type: 'ephemeral';
  ttl?: '5m' | '1h' | undefined;
}

/** Structured content for tool use (Messages API content blocks). */
export type ContentBlock = (
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: unknown }
  | { type: 'tool_result'; toolUseId: string; content: string; isError?: boolean }
) & { cacheControl?: CacheControl | undefined };

export interface ChatTurn {
  role: 'user' | 'assistant';
  /** Plain text, or blocks: an assistant turn with tool_use, a user turn with tool_result. */
  content: string | ContentBlock[];
}

/** A tool the model may call; `inputSchema` is a JSON Schema object. */
export interface ToolSpec {
  name: string;
  description: string;
  inputSchema: Record<string, unknown>;
  cacheControl?: CacheControl | undefined;
}

export interface ModelRequest {
  model: string;
  /** System prompt (instructions, grounding passages). */
  system?: string | undefined;
  /** Caches the prompt up to the end of the system prompt. */
  systemCacheControl?: CacheControl | undefined;
  messages: ChatTurn[];
  maxOutputTokens: number;
  /** Tools offered to the model; it may answer with tool_use events (stopReason 'tool_use'). */
  tools?: ToolSpec[] | undefined;
  /** Sampling: passed to the upstream as given; unset leaves the provider's default. */
  temperature?: number | undefined;
  topP?: number | undefined;
  topK?: number | undefined;
  /** The reply ends before the first of these (stopReason 'stop_sequence'). */
  stopSequences?: string[] | undefined;
  /** Aborting stops the upstream stream; the call then ends with a `cancelled` ModelError. */
  signal?: AbortSignal | undefined;
}

export interface Usage {
  /** All prompt tokens, cache writes and reads included. */
  inputTokens: number;
  outputTokens: number;
  /** Of inputTokens: written to / read from the prompt cache (priced apart); unset: none. */
  cacheWriteTokens?: number | undefined;
  cacheReadTokens?: number | undefined;
}

export type ModelEvent =
  | { type: 'delta'; text: string }
  /** A complete tool call (emitted when its block ends, input fully parsed). */
  | { type: 'tool_use'; id: string; name: string; input: unknown }
  | {
      type: 'done';
      usage: Usage;
      stopReason: string;
      /** The stop sequence that ended the reply, when stopReason is 'stop_sequence'. */
      stopSequence?: string | null | undefined;
    };

export class ModelError extends Error {
  override name = 'ModelError';
  constructor(
    readonly code: ModelErrorCode,
    message: string,
    /** Whether retrying the same request could succeed. */
    readonly retryable = false,
  ) {
    super(message);
  }
}

export interface ModelInfo {
  id: string;
  provider: 'anthropic' | 'openai' | 'bedrock' | 'mock';
  /** USD per million tokens, as decimal strings. */
  inputPricePerMTok: string;
  outputPricePerMTok: string;
  /** Prompt-cache writes and reads; unset: the input price. */
  cacheWritePricePerMTok?: string | undefined;
  cacheReadPricePerMTok?: string | undefined;
  contextWindow: number;
  maxOutputTokens: number;
}

/** What counting a prompt's tokens needs: the prompt, without the reply's settings. */
export type TokenCountRequest = Pick<
  ModelRequest,
  'model' | 'system' | 'systemCacheControl' | 'messages' | 'tools' | 'signal'
>;

export interface ModelProvider {
  /** Models this provider can serve right now. */
  models(): ModelInfo[];
  /**
   * Streams one completion. Yields `delta`s and `tool_use`s, then exactly one `done`; throws
   * ModelError on failure (after any text already yielded: callers keep the partial text).
   */
  stream(req: ModelRequest): AsyncIterable<ModelEvent>;
  /**
   * The prompt's input tokens as the model counts them, without calling the model; absent
   * when the upstream offers no way to count (OpenAI-compatible servers, Bedrock).
   */
  countTokens?(req: TokenCountRequest): Promise<number>;
}
