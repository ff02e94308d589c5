import type { ModelErrorCode } from '../../ai/ai.errors';
import type { ErrorTable } from '../../lib/error-table';
import type { AppErrorCode } from '../../lib/errors';

/** Agent runs. */
export const runsErrors = {
  'runs.not_found': { transport: 'NOT_FOUND' },
  'runs.approval_not_found': { transport: 'NOT_FOUND' },
  /** Already approved, rejected, expired or cancelled: a decision is made once. */
  'runs.approval_closed': { transport: 'CONFLICT' },
} as const satisfies ErrorTable<`runs.${string}`>;

/**
 * The codes a run fails with on its own account, seen in run.failed and Run.error; errors from
 * the gateway keep theirs.
 */
export const runFailureCodes = [
  'run.cancelled',
  'run.agent_unavailable',
  'run.max_steps',
  'run.output_invalid',
  'run.interrupted',
  'run.approval_expired',
  'run.rejected',
  'run.failed',
] as const;

export type RunFailureCode = (typeof runFailureCodes)[number];

/**
 * What a run fails with: its own codes, or the gateway's and the model's (a budget, a policy,
 * a provider error), so clients can branch on every case.
 */
export type RunErrorCode = RunFailureCode | AppErrorCode | ModelErrorCode;
