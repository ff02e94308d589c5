import type { Db } from '../../db/client';
import type { EventBus } from '../../events/bus';
import { publishRunEvents } from './run-store';
import type { RunEvent } from './runs.dto';

/**
 * When a pushed event goes out. 'soon' (step.started, text.delta, tool.called: progress a
 * subscriber waits for): within LINGER_MS, in the background, so events arriving meanwhile
 * share its transaction, or with its round's commit if the round ends first (a quick step or
 * tool). 'deferred' (usage, tool.result, handoff): with the round's commit, or earlier when a
 * later 'soon' event carries it along.
 */
export type EventTiming = 'soon' | 'deferred';

/** At most this late on a subscriber's screen; deltas of a real model arrive every ~10-50 ms. */
export const LINGER_MS = 20;

/**
 * A run's progress events in the order they happen, written in as few transactions as the
 * order allows (see EventTiming). One queue, first in first out, one flush at a time: ids
 * follow the order events were pushed.
 */
export interface RunEvents {
  push(event: RunEvent, when: EventTiming): void;
  /**
   * Waits for the flush in flight (pending events stay for `take`); rethrows a failed
   * flush's error (once).
   */
  settle(): Promise<void>;
  /** Waits for the flush in flight, whatever its outcome. */
  idle(): Promise<void>;
  /** Removes and returns what is pending, for the caller to publish in its transaction. */
  take(): RunEvent[];
}

interface Pending {
  event: RunEvent;
  live: boolean;
}

export function createRunEvents(deps: { db: Db; bus: EventBus }, runId: string): RunEvents {
  let pending: Pending[] = [];
  let flushing: Promise<void> | null = null;
  let failure: { error: unknown } | null = null;
  let timer: NodeJS.Timeout | null = null;

  const cancelTimer = () => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
  const startFlush = () => {
    cancelTimer();
    if (!flushing && !failure) flushing = drain();
  };

  /** Everything up to the last live event: deferred events after it keep waiting. */
  function nextBatch(): RunEvent[] {
    let end = -1;
    for (let i = pending.length - 1; i >= 0; i--) {
      if (pending[i]?.live) {
        end = i;
        break;
      }
    }
    const batch = pending.slice(0, end + 1).map((p) => p.event);
    pending = pending.slice(end + 1);
    return batch;
  }

  async function drain() {
    try {
      for (;;) {
        const batch = nextBatch();
        if (batch.length === 0) return;
        // On its own: one statement, or a transaction with the chat reply's writes.
        await publishRunEvents(deps, runId, batch);
      }
    } catch (error) {
      // The run fails at its next commit; what is pending then goes out with its end.
      failure = { error };
    } finally {
      flushing = null;
    }
  }

  return {
    push(event, when) {
      pending.push({ event, live: when !== 'deferred' });
      if (when === 'soon' && !timer && !flushing) {
        timer = setTimeout(startFlush, LINGER_MS);
        timer.unref();
      }
    },
    async settle() {
      // The caller's transaction takes what is pending: no flush of its own any more.
      cancelTimer();
      await flushing;
      if (failure) {
        const { error } = failure;
        failure = null;
        throw error;
      }
    },
    async idle() {
      cancelTimer();
      await flushing;
    },
    take() {
      const all = pending.map((p) => p.event);
      pending = [];
      return all;
    },
  };
}
