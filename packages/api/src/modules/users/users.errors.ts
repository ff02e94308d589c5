import type { ErrorTable } from '../../lib/error-table';

/** User administration. */
export const usersErrors = {
  'users.not_found': { transport: 'NOT_FOUND' },
  'users.cannot_change_self': { transport: 'BAD_REQUEST' },
} as const satisfies ErrorTable<`users.${string}`>;
