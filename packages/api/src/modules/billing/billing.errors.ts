import type { ErrorTable } from '../../lib/error-table';

/** The prepaid project balance. */
export const billingErrors = {
  'balance.insufficient': { transport: 'PAYMENT_REQUIRED' },
} as const satisfies ErrorTable<`balance.${string}`>;
