import { setTimeout as sleep } from 'node:timers/promises';
import { contentForCounting, contentText, toolsForCounting } from './content';
import { toolDirectives, toolResultReply } from './mock-tools';
import { MOCK_MODEL_ID, modelTable } from './models';
import type {
  ModelEvent,
  ModelInfo,
  ModelProvider,
  ModelRequest,
  TokenCountRequest,
} from './provider';
import { ModelError } from './provider';

/**
 * `mock-echo`: an offline, free, deterministic model, so development and tests run without
 * an API key and every layer above the provider (streaming, cancellation, billing) can be
 * exercised for real. It answers `Echo: <last user message>`, streamed word by word.
 * Tool use is scripted by directives in the prompt: see mock-tools.ts.
 */

/** A last user message containing this yields some text, then fails mid-stream. */
export const MOCK_FAIL_MARKER = '[[fail]]';

export interface MockProviderOptions {
  /** Pause before each chunk, so streaming is observable; 0 streams without pausing. */
  chunkDelayMs?: number | undefined;
  /** The mock's table entry (prices may be overridden); defaults to the built-in one. */
  model?: ModelInfo | undefined;
}

/** Deterministic stand-in for a tokenizer: about four characters per token. */
export function mockTokenCount(text: string): number {
  return Math.ceil(text.length / 4);
}

export function createMockProvider(options: MockProviderOptions = {}): ModelProvider {
  const delayMs = options.chunkDelayMs ?? 5;
  const info = options.model ?? modelTable().find((m) => m.id === MOCK_MODEL_ID);
  if (!info) throw new Error(`${MOCK_MODEL_ID} is missing from the model table`);
  if (!(Number.isFinite(delayMs) && delayMs >= 0)) {
    throw new RangeError(`chunkDelayMs must be a non-negative number, got ${delayMs}`);
  }
  return {
    models: () => [{ ...info }],
    stream: (req) => streamEcho(req, info, delayMs),
    // Exactly the input tokens a call with this prompt reports.
    countTokens: async (req) => {
      if (req.model !== info.id) {
        throw new ModelError('model.unavailable', `The mock provider does not serve ${req.model}`);
      }
      return mockTokenCount(promptText(req));
    },
  };
}

/** The prompt as the mock counts it: tool definitions are part of it, as for a real model. */
function promptText(req: TokenCountRequest): string {
  return [
    req.system ?? '',
    toolsForCounting(req.tools),
    ...req.messages.map((m) => contentForCounting(m.content)),
  ].join('');
}

async function* streamEcho(
  req: ModelRequest,
  info: ModelInfo,
  delayMs: number,
): AsyncGenerator<ModelEvent> {
  if (req.model !== info.id) {
    throw new ModelError('model.unavailable', `The mock provider does not serve ${req.model}`);
  }
  const { signal } = req;
  const lastTurn = req.messages.findLast((m) => m.role === 'user');
  const lastUser = contentText(lastTurn?.content ?? '');
  const fail = lastUser.includes(MOCK_FAIL_MARKER);
  const prompt = promptText(req);

  const calls = req.tools?.length && !fail ? toolDirectives(lastUser, req.messages.length) : [];
  if (calls.length > 0) {
    const output = JSON.stringify(calls);
    // A call that does not fit is cut off, and a cut call is no call: as the Claude adapter
    // reports a truncated tool call, with stop reason max_tokens alone.
    const fits = mockTokenCount(output) <= req.maxOutputTokens;
    for (const call of fits ? calls : []) {
      await pause(delayMs, signal);
      yield { type: 'tool_use', ...call };
    }
    throwIfCancelled(signal);
    yield {
      type: 'done',
      usage: {
        inputTokens: mockTokenCount(prompt),
        outputTokens: fits ? mockTokenCount(output) : Math.max(0, req.maxOutputTokens),
      },
      stopReason: fits ? 'tool_use' : 'max_tokens',
    };
    return;
  }

  // Like a real model, stop at the output limit and say so.
  let reply = toolResultReply(lastTurn) ?? `Echo: ${lastUser}`;
  let stopReason = 'end_turn';
  let stopSequence: string | null = null;
  const cut = firstStop(reply, req.stopSequences ?? []);
  if (cut) {
    reply = reply.slice(0, cut.at);
    stopReason = 'stop_sequence';
    stopSequence = cut.stop;
  }
  const limitChars = Math.max(0, req.maxOutputTokens) * 4;
  if (reply.length > limitChars) {
    reply = reply.slice(0, limitChars);
    stopReason = 'max_tokens';
    stopSequence = null;
  }

  // Split between whitespace and the next word, so the chunks join back to the exact reply.
  const chunks = reply.split(/(?<=\s)(?=\S)/).filter((c) => c !== '');
  // The failure comes after about half the reply (at least one chunk), as a cut stream would.
  const failAfter = fail ? Math.max(1, Math.floor(chunks.length / 2)) : Number.POSITIVE_INFINITY;

  for (const [i, text] of chunks.entries()) {
    if (i >= failAfter) {
      throw new ModelError(
        'model.stream_interrupted',
        `mock-echo: simulated interruption (${MOCK_FAIL_MARKER})`,
        true,
      );
    }
    await pause(delayMs, signal);
    yield { type: 'delta', text };
  }
  throwIfCancelled(signal);

  yield {
    type: 'done',
    usage: { inputTokens: mockTokenCount(prompt), outputTokens: mockTokenCount(reply) },
    stopReason,
    ...(stopSequence ? { stopSequence } : {}),
  };
}

/** Where the earliest stop sequence starts in `text`, as a real model would stop there. */
function firstStop(text: string, stops: readonly string[]): { at: number; stop: string } | null {
  let best: { at: number; stop: string } | null = null;
  for (const stop of stops) {
    const at = stop === '' ? -1 : text.indexOf(stop);
    if (at >= 0 && (best === null || at < best.at)) best = { at, stop };
  }
  return best;
}

async function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  throwIfCancelled(signal);
  if (ms === 0) return;
  try {
    await sleep(ms, undefined, { signal });
  } catch (err) {
    // The timer rejects with an AbortError as soon as the signal fires: cancel mid-pause.
    throwIfCancelled(signal);
    throw err;
  }
}

function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new ModelError('model.cancelled', 'The request was cancelled');
}
