import type { ModelEvent, ModelProvider, ModelRequest } from '../provider';
import { ModelError } from '../provider';

/** What one `stream()` call produced: the deltas, the final event, or the error it threw. */
export interface StreamOutcome {
  /** Every event, in order. */
  events: ModelEvent[];
  deltas: string[];
  text: string;
  toolUses: Array<Extract<ModelEvent, { type: 'tool_use' }>>;
  done: Extract<ModelEvent, { type: 'done' }> | undefined;
  error: ModelError | undefined;
}

/**
 * Drains a model stream, keeping the text yielded before any failure, as callers must.
 * `onDelta` runs after each delta (e.g. to abort mid-stream). Non-ModelErrors are rethrown:
 * a provider must never leak them.
 */
export async function collectStream(
  provider: ModelProvider,
  req: ModelRequest,
  onDelta?: (text: string, index: number) => void,
): Promise<StreamOutcome> {
  const out: StreamOutcome = {
    events: [],
    deltas: [],
    text: '',
    toolUses: [],
    done: undefined,
    error: undefined,
  };
  try {
    for await (const event of provider.stream(req)) {
      out.events.push(event);
      if (event.type === 'delta') {
        out.deltas.push(event.text);
        onDelta?.(event.text, out.deltas.length - 1);
      } else if (event.type === 'tool_use') {
        out.toolUses.push(event);
      } else {
        out.done = event;
      }
    }
  } catch (err) {
    if (!(err instanceof ModelError)) throw err;
    out.error = err;
  }
  out.text = out.deltas.join('');
  return out;
}
