import type { ModelErrorCode } from '../ai/ai.errors';
import { ModelError } from '../ai/provider';
import { AppError, type AppErrorCode } from './errors';
import { isShutdown } from './worker';

/** A failure a job raises on purpose: its code and message reach the user as they are. */
export class WorkFailure<C extends string> extends Error {
  constructor(
    readonly appCode: C,
    message: string,
  ) {
    super(message);
  }
}

export type Failure<C extends string> = (
  | { kind: 'shutdown' }
  | { kind: 'cancelled' }
  | { kind: 'failed'; appCode: C | AppErrorCode | ModelErrorCode; message: string }
) & {
  /** The error is none of the known kinds: a bug or an outage worth a log line. */
  unexpected: boolean;
};

/**
 * Why a background job (a run, a reply) stopped. The signal decides first: an aborted job is
 * shut down or cancelled whatever it threw on the way out. Known errors keep their code and
 * message; anything else becomes `fallback`, whose generic message hides internals.
 */
export function classifyFailure<C extends string>(
  err: unknown,
  signal: AbortSignal,
  fallback: { appCode: C; message: string },
): Failure<C> {
  const known = err instanceof WorkFailure || err instanceof AppError || err instanceof ModelError;
  const unexpected = !known;
  if (isShutdown(signal)) return { kind: 'shutdown', unexpected };
  if (signal.aborted) return { kind: 'cancelled', unexpected };
  if (err instanceof WorkFailure) {
    return { kind: 'failed', appCode: err.appCode as C, message: err.message, unexpected };
  }
  if (err instanceof AppError || err instanceof ModelError) {
    return { kind: 'failed', appCode: err.code, message: err.message, unexpected };
  }
  return { kind: 'failed', ...fallback, unexpected };
}
