import type { ModelChatTurn, ModelToolSpec } from '@smartspace/api';
import type { KeyPrincipal } from './auth';
import type { Deps } from './deps';
import { CompatError } from './errors';

/** Anthropic's prompt-cache mark, as the gateway carries it. */
export type ModelCacheControl = NonNullable<ModelToolSpec['cacheControl']>;

/** A model call in the gateway's terms, whichever protocol it arrived in. */
export interface CompatRequest {
  model: string;
  system?: string | undefined;
  systemCacheControl?: ModelCacheControl | undefined;
  messages: ModelChatTurn[];
  maxOutputTokens: number;
  tools?: ModelToolSpec[] | undefined;
  stopSequences?: string[] | undefined;
  temperature?: number | undefined;
  topP?: number | undefined;
  topK?: number | undefined;
}

export interface CompatUsage {
  /** All prompt tokens, cache writes and reads included. */
  inputTokens: number;
  outputTokens: number;
  cacheWriteTokens?: number | undefined;
  cacheReadTokens?: number | undefined;
}

/** What a route renders: text, whole tool calls, then one `done`. */
export type CompatEvent =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: unknown }
  | { type: 'done'; usage: CompatUsage; stopReason: string; stopSequence: string | null };

/** Unknown models and outputs beyond the model's limit are refused before any reservation. */
export function checkModel(deps: Deps, model: string, maxOutputTokens: number): void {
  const info = deps.models.get(model);
  if (!info) {
    throw new CompatError(
      404,
      'not_found_error',
      'model.unavailable',
      `model: ${model} is not available on this server`,
    );
  }
  if (maxOutputTokens > info.maxOutputTokens) {
    throw new CompatError(
      400,
      'invalid_request_error',
      'bad_request',
      `max_tokens: ${maxOutputTokens} > ${info.maxOutputTokens}, the maximum for ${model}`,
    );
  }
}

/**
 * Runs the call through the gateway (policy, limits, reservation, settlement) as the key.
 * Sampling settings and stop sequences go to the provider, which stops the model itself, so
 * a reply ending on a stop sequence is a complete call, billed by the provider's usage.
 */
export async function* complete(
  deps: Deps,
  who: KeyPrincipal,
  req: CompatRequest,
  signal: AbortSignal,
): AsyncGenerator<CompatEvent> {
  const events = deps.gateway.stream({
    projectId: who.projectId,
    userId: who.user.id,
    keyId: who.keyId,
    source: 'api',
    model: req.model,
    system: req.system,
    systemCacheControl: req.systemCacheControl,
    messages: req.messages,
    maxOutputTokens: req.maxOutputTokens,
    tools: req.tools,
    stopSequences: req.stopSequences,
    temperature: req.temperature,
    topP: req.topP,
    topK: req.topK,
    signal,
  });
  for await (const ev of events) {
    if (ev.type === 'delta') yield { type: 'text', text: ev.text };
    else if (ev.type === 'tool_use') yield ev;
    else {
      yield {
        type: 'done',
        usage: ev.usage,
        stopReason: ev.stopReason,
        stopSequence: ev.stopSequence ?? null,
      };
    }
  }
}

/** The generator again, with its already-read first result in front. */
export async function* prepend<T>(
  first: IteratorResult<T, unknown>,
  rest: AsyncGenerator<T>,
): AsyncGenerator<T> {
  try {
    if (first.done) return;
    yield first.value;
    yield* rest;
  } finally {
    await rest.return(undefined);
  }
}
