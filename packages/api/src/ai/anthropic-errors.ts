import { APIConnectionError, APIError, APIUserAbortError } from '@anthropic-ai/sdk';
import type { ModelErrorCode } from './ai.errors';
import { ModelError } from './provider';

/**
 * Turns whatever the Anthropic SDK throws into a ModelError. By the time an HTTP error
 * reaches us the SDK has already spent its retries on it (429, 408, 409, 5xx and connection
 * failures), so "retryable" here means "worth trying again later", not "retry now".
 */
export function toModelError(err: unknown, signal: AbortSignal | undefined): ModelError {
  if (err instanceof ModelError) return err;
  // Abort surfaces in several shapes (APIUserAbortError, a DOMException from fetch, or a
  // connection error caused by it); the signal is the one reliable witness.
  if (signal?.aborted || err instanceof APIUserAbortError) return cancelled(err);
  if (err instanceof APIConnectionError) {
    return withCause(
      new ModelError('model.stream_interrupted', `Anthropic API unreachable: ${err.message}`, true),
      err,
    );
  }
  if (err instanceof APIError) return fromApiError(err);
  return withCause(
    new ModelError('model.failed', `Anthropic API call failed: ${describe(err)}`),
    err,
  );
}

/** An error while reading the body of a stream that had started: the stream was cut. */
export function toStreamError(err: unknown, signal: AbortSignal | undefined): ModelError {
  // APIError covers the SSE `error` event the API sends mid-stream (e.g. overloaded_error).
  if (err instanceof ModelError || err instanceof APIError || signal?.aborted) {
    return toModelError(err, signal);
  }
  // A malformed event is a protocol bug, not an interruption that a retry would fix.
  if (err instanceof SyntaxError) return toModelError(err, signal);
  // undici reports a connection closed mid-body as `TypeError: terminated`.
  return withCause(
    new ModelError(
      'model.stream_interrupted',
      `Anthropic stream interrupted: ${describe(err)}`,
      true,
    ),
    err,
  );
}

export function cancelled(cause?: unknown): ModelError {
  return withCause(new ModelError('model.cancelled', 'The request was cancelled'), cause);
}

// `type` is what the API puts in the body, and the only clue for a mid-stream `error`
// event, which has no HTTP status of its own.
const byType: Record<string, [ModelErrorCode, boolean]> = {
  rate_limit_error: ['model.rate_limited', true],
  overloaded_error: ['model.overloaded', true],
  api_error: ['model.overloaded', true],
  timeout_error: ['model.overloaded', true],
  invalid_request_error: ['model.bad_request', false],
  request_too_large: ['model.bad_request', false],
  authentication_error: ['model.auth_failed', false],
  permission_error: ['model.auth_failed', false],
  not_found_error: ['model.unavailable', false],
};

function fromApiError(err: APIError): ModelError {
  const [code, retryable] = classify(err.status, err.type ?? undefined);
  const detail = err.apiMessage ?? err.message;
  const status = err.status === undefined ? '' : ` (${err.status})`;
  const requestId = err.requestID ? `, request ${err.requestID}` : '';
  return withCause(
    new ModelError(code, `Anthropic API${status}: ${detail}${requestId}`, retryable),
    err,
  );
}

function classify(status: number | undefined, type: string | undefined): [ModelErrorCode, boolean] {
  if (status === 429) return ['model.rate_limited', true];
  if (status === 529 || type === 'overloaded_error') return ['model.overloaded', true];
  if (status !== undefined && status >= 500) return ['model.overloaded', true];
  if (status === 400 || status === 413 || status === 422) return ['model.bad_request', false];
  if (status === 401 || status === 403) return ['model.auth_failed', false];
  if (status === 404) return ['model.unavailable', false];
  if (status === 408 || status === 409) return ['model.failed', true];
  return (type !== undefined && byType[type]) || ['model.failed', false];
}

function withCause(error: ModelError, cause: unknown): ModelError {
  if (cause !== undefined) error.cause = cause;
  return error;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
  return `${err.message}${cause}`;
}
