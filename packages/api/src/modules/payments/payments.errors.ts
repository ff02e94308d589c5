import type { ErrorTable } from '../../lib/error-table';

/** USDC deposits: claiming, scanning and assigning them. */
export const paymentsErrors = {
  'payments.not_configured': { transport: 'PRECONDITION_FAILED' },
  'payments.misconfigured': { transport: 'PRECONDITION_FAILED' },
  'payments.chain_unavailable': { transport: 'SERVICE_UNAVAILABLE' },
  'payments.tx_not_found': { transport: 'NOT_FOUND' },
  'payments.tx_failed': { transport: 'BAD_REQUEST' },
  'payments.no_usdc_transfer': { transport: 'BAD_REQUEST' },
  'payments.wrong_recipient': { transport: 'BAD_REQUEST' },
  'payments.wallet_not_linked': { transport: 'FORBIDDEN' },
  'payments.already_claimed': { transport: 'CONFLICT' },
  'payments.not_found': { transport: 'NOT_FOUND' },
  'payments.not_assignable': { transport: 'CONFLICT' },
} as const satisfies ErrorTable<`payments.${string}`>;
