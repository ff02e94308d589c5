import { WorkFailure } from '../../lib/failure';
import type { RunFailureCode } from './runs.errors';

export class RunFailure extends WorkFailure<RunFailureCode> {}

export const RUN_FAILED = { appCode: 'run.failed', message: 'The run failed' } as const;
