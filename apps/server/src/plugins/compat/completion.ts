import {
  estimateInputTokens,
  estimateOutputTokens,
  type ModelChatTurn,
  type ModelToolSpec,
} from '@smartspace/api';
import type { KeyPrincipal } from './auth';
import type { Deps } from './deps';
import { CompatError } from './errors';
import { StopScanner } from './stop-sequences';

/** A model call in the gateway's terms, whichever protocol it arrived in. */
export interface CompatRequest {
  model: string;
  system?: string | undefined;
  messages: ModelChatTurn[];
  maxOutputTokens: number;
  tools?: ModelToolSpec[] | undefined;
  stopSequences?: string[] | undefined;
}

export interface CompatUsage {
  inputTokens: number;
  outputTokens: number;
}

/** What a route renders: text (after stop sequences), whole tool calls, then one `done`. */
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
 * Stopping early, on a stop sequence or because the caller stops iterating, ends the gateway
 * call: it settles what was produced and releases the rest before this generator returns.
 */
export async function* complete(
  deps: Deps,
  who: KeyPrincipal,
  req: CompatRequest,
  signal: AbortSignal,
): AsyncGenerator<CompatEvent> {
  const scanner = new StopScanner(req.stopSequences ?? []);
  let produced = '';
  const events = deps.gateway.stream({
    projectId: who.projectId,
    userId: who.user.id,
    keyId: who.keyId,
    source: 'api',
    model: req.model,
    system: req.system,
    messages: req.messages,
    maxOutputTokens: req.maxOutputTokens,
    tools: req.tools,
    signal,
  });
  for await (const ev of events) {
    if (ev.type === 'delta') {
      produced += ev.text;
      const { emit, hit } = scanner.push(ev.text);
      if (emit !== '') yield { type: 'text', text: emit };
      if (hit !== null) {
        // Leaving the loop returns the gateway's generator: it settles as cancelled, charged
        // for the text received, as estimated here for the caller.
        await events.return(undefined);
        yield {
          type: 'done',
          usage: {
            inputTokens: estimateInputTokens(req.system, req.messages, req.tools),
            outputTokens: estimateOutputTokens(produced),
          },
          stopReason: 'stop_sequence',
          stopSequence: hit,
        };
        return;
      }
    } else {
      const rest = scanner.flush();
      if (rest !== '') yield { type: 'text', text: rest };
      if (ev.type === 'tool_use') yield ev;
      else yield { type: 'done', usage: ev.usage, stopReason: ev.stopReason, stopSequence: null };
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
