import { AppError, isServiceUnavailable, ModelError } from '@smartspace/api';

/**
 * One refusal or failure of a compatible endpoint, protocol-neutral: the route renders it in
 * Anthropic's or OpenAI's error body. `appCode` is SmartSpace's own code, put in the message
 * so SDK users see why (the SDKs surface the message, not extra fields).
 */
export class CompatError extends Error {
  override name = 'CompatError';
  constructor(
    readonly status: number,
    /** Anthropic's error type; OpenAI's is derived from it. */
    readonly kind: AnthropicErrorType,
    readonly appCode: string,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export type AnthropicErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'request_too_large'
  | 'rate_limit_error'
  | 'api_error'
  | 'overloaded_error';

export function badRequest(message: string): CompatError {
  return new CompatError(400, 'invalid_request_error', 'bad_request', message);
}

/** The model failures a caller can act on; the rest are the server's problem (500). */
const MODEL_FAILURES: Partial<Record<string, [number, AnthropicErrorType]>> = {
  'model.unavailable': [404, 'not_found_error'],
  'model.rate_limited': [429, 'rate_limit_error'],
  'model.overloaded': [529, 'overloaded_error'],
  'model.bad_request': [400, 'invalid_request_error'],
};

/**
 * Maps what the gateway throws: policy and budget refusals are the caller's to fix (403: the
 * SDKs raise PermissionDeniedError, which they do not retry), rate limits are 429 with
 * `retry-after`, upstream model failures keep their meaning.
 */
export function toCompatError(err: unknown): CompatError | null {
  if (err instanceof CompatError) return err;
  if (err instanceof AppError) {
    if (err.code === 'rate_limited') {
      const ms = Number(err.meta?.retryAfterMs ?? 1000);
      const seconds = Math.max(1, Math.ceil(ms / 1000));
      return new CompatError(429, 'rate_limit_error', err.code, err.message, seconds);
    }
    if (
      err.code.startsWith('policy.') ||
      err.code === 'budget.exceeded' ||
      err.code === 'balance.insufficient'
    ) {
      return new CompatError(403, 'permission_error', err.code, err.message);
    }
    return null;
  }
  if (err instanceof ModelError) {
    const [status, kind] = MODEL_FAILURES[err.code] ?? [500, 'api_error'];
    return new CompatError(status, kind, err.code, err.message);
  }
  if (isServiceUnavailable(err)) {
    return new CompatError(
      503,
      'overloaded_error',
      'unavailable',
      'The service is temporarily unavailable; try again shortly',
    );
  }
  return null;
}

/** The message clients see: SmartSpace's code first, so it survives any SDK formatting. */
export function describe(err: CompatError): string {
  return `[${err.appCode}] ${err.message}`;
}

export function anthropicErrorBody(err: CompatError) {
  return { type: 'error', error: { type: err.kind, message: describe(err) } };
}

const OPENAI_TYPES: Record<AnthropicErrorType, string> = {
  invalid_request_error: 'invalid_request_error',
  authentication_error: 'invalid_request_error',
  permission_error: 'permission_error',
  not_found_error: 'invalid_request_error',
  request_too_large: 'invalid_request_error',
  rate_limit_error: 'rate_limit_error',
  api_error: 'server_error',
  overloaded_error: 'server_error',
};

export function openaiErrorBody(err: CompatError) {
  return {
    error: {
      message: describe(err),
      type: OPENAI_TYPES[err.kind],
      param: null,
      code: err.appCode,
    },
  };
}

/** OpenAI has no 529; its clients know 503 as "try again later". */
export function openaiStatus(err: CompatError): number {
  return err.status === 529 ? 503 : err.status;
}

/** Anything else is a server fault: logged in full, answered without details. */
export function unexpected(err: unknown, log: { error(obj: unknown, msg: string): void }) {
  log.error({ err }, 'compatible endpoint failed');
  return new CompatError(500, 'api_error', 'internal', 'Internal server error');
}
