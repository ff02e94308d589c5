import { WorkFailure } from '../../lib/failure';

/** The codes a run fails with on its own account; errors from the gateway keep theirs. */
export type RunFailureCode =
  | 'run.cancelled'
  | 'run.agent_unavailable'
  | 'run.max_steps'
  | 'run.output_invalid'
  | 'run.interrupted'
  | 'run.failed';

export class RunFailure extends WorkFailure<RunFailureCode> {}

export const RUN_FAILED = { appCode: 'run.failed', message: 'The run failed' } as const;
