import type { ErrorTable } from '../lib/error-table';

/** A request that names a model no provider can serve. */
export const modelErrors = {
  'model.unavailable': { transport: 'PRECONDITION_FAILED' },
} as const satisfies ErrorTable<`model.${string}`>;

/**
 * The codes a model call fails with (ModelError). They are no tRPC errors: a reply or run the
 * call belonged to fails with the code, which clients read as its appCode.
 */
export const modelFailureCodes = [
  'model.unavailable', // no key / not configured / unknown model
  'model.rate_limited', // upstream 429 after retries
  'model.overloaded', // upstream 529/5xx after retries
  'model.bad_request', // upstream 400 (e.g. prompt too long)
  'model.auth_failed', // upstream 401/403
  'model.stream_interrupted', // connection cut mid-stream
  'model.bad_response', // upstream broke the protocol (e.g. malformed tool input JSON)
  'model.cancelled', // the signal was aborted
  'model.failed', // anything else
] as const;

export type ModelErrorCode = (typeof modelFailureCodes)[number];
