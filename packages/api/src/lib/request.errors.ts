import type { ErrorTable } from './error-table';

/** Codes that belong to no one module: the request itself, or the service as a whole. */
export const requestErrors = {
  'pagination.invalid_cursor': { transport: 'BAD_REQUEST' },
  rate_limited: { transport: 'TOO_MANY_REQUESTS' },
  'service.unavailable': { transport: 'SERVICE_UNAVAILABLE' },
} as const satisfies ErrorTable;

/** Stable app codes for errors raised by tRPC itself (bad input, unknown procedure, ...). */
export const genericAppCodes: Record<string, string> = {
  PARSE_ERROR: 'request.malformed',
  BAD_REQUEST: 'request.invalid',
  UNAUTHORIZED: 'auth.unauthenticated',
  FORBIDDEN: 'auth.forbidden',
  NOT_FOUND: 'request.not_found',
  METHOD_NOT_SUPPORTED: 'request.method_not_supported',
  TIMEOUT: 'request.timeout',
  CONFLICT: 'request.conflict',
  PRECONDITION_FAILED: 'request.precondition_failed',
  PAYLOAD_TOO_LARGE: 'request.too_large',
  UNSUPPORTED_MEDIA_TYPE: 'request.unsupported_media_type',
  UNPROCESSABLE_CONTENT: 'request.unprocessable',
  TOO_MANY_REQUESTS: 'rate_limited',
  CLIENT_CLOSED_REQUEST: 'request.cancelled',
  INTERNAL_SERVER_ERROR: 'internal',
  NOT_IMPLEMENTED: 'request.not_implemented',
  SERVICE_UNAVAILABLE: 'service.unavailable',
};
