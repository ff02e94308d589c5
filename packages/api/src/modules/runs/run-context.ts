import type { ModelRegistry } from '../../ai/registry';
import type { Db } from '../../db/client';
import type { EventBus } from '../../events/bus';
import type { Logger } from '../../lib/logger';
import type { Gateway } from '../gateway/gateway';
import { countSteps, type RunProgress, type StepRecord, saveStep } from './run-store';
import type { RunRow } from './runs.table';

/** What executing a run needs from outside: passed in, never reached for. */
export interface RunLoopDeps {
  db: Db;
  bus: EventBus;
  gateway: Gateway;
  models: ModelRegistry;
  log: Logger;
  maxOutputTokens: number;
}

/** One run in execution: its row, its signal, and the progress it accumulates. */
export interface RunContext {
  deps: RunLoopDeps;
  run: RunRow;
  signal: AbortSignal;
  progress: RunProgress;
  /** Index the next recorded step gets; a resumed run continues after its stored steps. */
  readonly nextStep: number;
  recordStep(step: StepRecord): Promise<unknown>;
}

export async function openRunContext(
  deps: RunLoopDeps,
  run: RunRow,
  signal: AbortSignal,
): Promise<RunContext> {
  let nextStep = await countSteps(deps.db, run.id);
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
    get nextStep() {
      return nextStep;
    },
    recordStep: (step) => saveStep(deps.db, run.id, nextStep++, step),
  };
}
