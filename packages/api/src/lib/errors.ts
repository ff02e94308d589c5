/**
 * Application errors: services throw these with a stable dotted code; the tRPC layer maps the
 * code to a transport code and HTTP status through the one table below.
 */
export const appErrorCodes = {
  'auth.unauthenticated': 'UNAUTHORIZED',
  'auth.invalid_credentials': 'UNAUTHORIZED',
  'auth.token_invalid': 'UNAUTHORIZED',
  'auth.session_ended': 'UNAUTHORIZED',
  'auth.refresh_invalid': 'UNAUTHORIZED',
  'auth.refresh_reused': 'UNAUTHORIZED',
  'auth.account_disabled': 'FORBIDDEN',
  'auth.email_taken': 'CONFLICT',
  'auth.wrong_password': 'BAD_REQUEST',
  'auth.admin_required': 'FORBIDDEN',
  'auth.reset_token_invalid': 'BAD_REQUEST',
  'users.not_found': 'NOT_FOUND',
  'users.cannot_change_self': 'BAD_REQUEST',
  'projects.not_found': 'NOT_FOUND',
  'projects.role_insufficient': 'FORBIDDEN',
  'projects.owner_required': 'FORBIDDEN',
  'projects.last_owner': 'CONFLICT',
  'projects.member_exists': 'CONFLICT',
  'projects.member_not_found': 'NOT_FOUND',
  'projects.access_revoked': 'FORBIDDEN',
  'pagination.invalid_cursor': 'BAD_REQUEST',
  'events.expired': 'PRECONDITION_FAILED',
  'events.invalid_id': 'BAD_REQUEST',
  'realtime.too_many_connections': 'TOO_MANY_REQUESTS',
  'realtime.too_many_subscriptions': 'TOO_MANY_REQUESTS',
  'chat.conversation_not_found': 'NOT_FOUND',
  'chat.reply_not_found': 'NOT_FOUND',
  'chat.reply_in_progress': 'CONFLICT',
  'chat.unknown_model': 'BAD_REQUEST',
  'model.unavailable': 'PRECONDITION_FAILED',
  'policy.model_not_allowed': 'FORBIDDEN',
  'policy.cost_limit': 'FORBIDDEN',
  'budget.exceeded': 'PAYMENT_REQUIRED',
  'budget.limit_not_found': 'NOT_FOUND',
  'budget.invalid_scope': 'BAD_REQUEST',
  'balance.insufficient': 'PAYMENT_REQUIRED',
  'agents.not_found': 'NOT_FOUND',
  'agents.invalid': 'BAD_REQUEST',
  'agents.name_taken': 'CONFLICT',
  'agents.inactive': 'PRECONDITION_FAILED',
  'runs.not_found': 'NOT_FOUND',
  'wallets.message_invalid': 'BAD_REQUEST',
  'wallets.domain_mismatch': 'BAD_REQUEST',
  'wallets.chain_mismatch': 'BAD_REQUEST',
  'wallets.nonce_invalid': 'BAD_REQUEST',
  'wallets.signature_invalid': 'BAD_REQUEST',
  'wallets.already_linked': 'CONFLICT',
  'wallets.not_found': 'NOT_FOUND',
  'payments.not_configured': 'PRECONDITION_FAILED',
  'payments.misconfigured': 'PRECONDITION_FAILED',
  'payments.chain_unavailable': 'SERVICE_UNAVAILABLE',
  'payments.tx_not_found': 'NOT_FOUND',
  'payments.tx_failed': 'BAD_REQUEST',
  'payments.no_usdc_transfer': 'BAD_REQUEST',
  'payments.wrong_recipient': 'BAD_REQUEST',
  'payments.wallet_not_linked': 'FORBIDDEN',
  'payments.already_claimed': 'CONFLICT',
  'payments.not_found': 'NOT_FOUND',
  'payments.not_assignable': 'CONFLICT',
  'files.not_found': 'NOT_FOUND',
  'files.too_large': 'PAYLOAD_TOO_LARGE',
  'files.empty': 'BAD_REQUEST',
  'files.invalid': 'BAD_REQUEST',
  rate_limited: 'TOO_MANY_REQUESTS',
  'service.unavailable': 'SERVICE_UNAVAILABLE',
} as const;

export type AppErrorCode = keyof typeof appErrorCodes;
export type TransportCode = (typeof appErrorCodes)[AppErrorCode];

export class AppError extends Error {
  override name = 'AppError';
  constructor(
    readonly code: AppErrorCode,
    message: string,
    readonly meta?: Record<string, unknown>,
  ) {
    super(message);
  }
}

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
