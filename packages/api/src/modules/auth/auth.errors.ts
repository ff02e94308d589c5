import type { ErrorTable } from '../../lib/error-table';

/** Sign-in, sessions, tokens and password resets. */
export const authErrors = {
  'auth.unauthenticated': { transport: 'UNAUTHORIZED' },
  'auth.invalid_credentials': { transport: 'UNAUTHORIZED' },
  'auth.token_invalid': { transport: 'UNAUTHORIZED' },
  'auth.session_ended': { transport: 'UNAUTHORIZED' },
  'auth.refresh_invalid': { transport: 'UNAUTHORIZED' },
  'auth.refresh_reused': { transport: 'UNAUTHORIZED' },
  'auth.account_disabled': { transport: 'FORBIDDEN' },
  'auth.email_taken': { transport: 'CONFLICT' },
  'auth.wrong_password': { transport: 'BAD_REQUEST' },
  'auth.admin_required': { transport: 'FORBIDDEN' },
  'auth.reset_token_invalid': { transport: 'BAD_REQUEST' },
} as const satisfies ErrorTable<`auth.${string}`>;
