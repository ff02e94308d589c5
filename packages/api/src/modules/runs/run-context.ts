import type { ModelRegistry } from '../../ai/registry';
import type { Db } from '../../db/client';
import type { EventBus } from '../../events/bus';
import type { Logger } from '../../lib/logger';
import type { Gateway } from '../gateway/gateway';
import type { McpRuntime } from '../mcp/runtime';
import { createRunEvents, type RunEvents } from './run-events';
import type { ClaimedRun, RunProgress, StepRow } from './run-store';

/** What executing a run needs from outside: passed in, never reached for. */
/** Hooks for metrics: told what happened, never able to change it. */
export interface RunObservers {
  runStep?: ((kind: 'model' | 'tool', seconds: number) => void) | undefined;
  runFinished?: ((status: 'succeeded' | 'failed' | 'cancelled') => void) | undefined;
}

export interface RunLoopDeps {
  db: Db;
  bus: EventBus;
  gateway: Gateway;
  models: ModelRegistry;
  log: Logger;
  maxOutputTokens: number;
  observe?: RunObservers | undefined;
  /** Reaching MCP tool servers; unset: MCP tools answer the model with an error. */
  mcp?: McpRuntime | undefined;
}

export type StepRecord = Omit<StepRow, 'runId' | 'index'>;

/** One run in execution: its row, its signal, and the progress it accumulates. */
export interface RunContext {
  deps: RunLoopDeps;
  run: ClaimedRun;
  signal: AbortSignal;
  /** What the run has accumulated, this round included; saved when the round commits. */
  progress: RunProgress;
  /** Progress events, published in order (see run-events.ts). */
  events: RunEvents;
  /** Index the next recorded step gets; a resumed run continues after its stored steps. */
  readonly nextStep: number;
  /** Adds a step to the current round: stored when the round commits or the run ends. */
  recordStep(step: StepRecord): void;
  /** Removes and returns the current round's steps, for the transaction that stores them. */
  takeSteps(): StepRow[];
  /**
   * Takes a model call's settlement, written while the run goes on (gateway `settled`): it
   * overlaps the round's commit.
   */
  settling(settlement: Promise<void>): void;
  /**
   * Resolves once every settlement taken so far has landed: before the next model call
   * (whose admission must see what the last one really cost) and before the run's last
   * write (a finished run's usage is recorded).
   */
  settled(): Promise<void>;
}

export function openRunContext(
  deps: RunLoopDeps,
  run: ClaimedRun,
  signal: AbortSignal,
): RunContext {
  let nextStep = run.stepCount;
  let steps: StepRow[] = [];
  let settlements: Promise<void>[] = [];
  return {
    deps,
    run,
    signal,
    progress: {
      transcript: [...run.transcript],
      activeAgentId: run.activeAgentId,
      inputTokens: run.inputTokens,
      outputTokens: run.outputTokens,
      cost: run.cost,
    },
    events: createRunEvents(deps, run.id),
    get nextStep() {
      return nextStep;
    },
    recordStep(step) {
      steps.push({ ...step, runId: run.id, index: nextStep++ });
    },
    takeSteps() {
      const taken = steps;
      steps = [];
      return taken;
    },
    settling(settlement) {
      settlements.push(settlement);
    },
    async settled() {
      while (settlements.length > 0) {
        const pending = settlements;
        settlements = [];
        await Promise.all(pending);
      }
    },
  };
}
