import type { ErrorTable } from '../../lib/error-table';

/** Spending limits and their scopes. */
export const budgetsErrors = {
  'budget.exceeded': { transport: 'PAYMENT_REQUIRED' },
  'budget.limit_not_found': { transport: 'NOT_FOUND' },
  'budget.invalid_scope': { transport: 'BAD_REQUEST' },
} as const satisfies ErrorTable<`budget.${string}`>;
