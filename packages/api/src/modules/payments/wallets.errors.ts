import type { ErrorTable } from '../../lib/error-table';

/** Linking wallets by signed message (SIWE). */
export const walletsErrors = {
  'wallets.message_invalid': { transport: 'BAD_REQUEST' },
  'wallets.domain_mismatch': { transport: 'BAD_REQUEST' },
  'wallets.chain_mismatch': { transport: 'BAD_REQUEST' },
  'wallets.nonce_invalid': { transport: 'BAD_REQUEST' },
  'wallets.signature_invalid': { transport: 'BAD_REQUEST' },
  'wallets.already_linked': { transport: 'CONFLICT' },
  'wallets.not_found': { transport: 'NOT_FOUND' },
} as const satisfies ErrorTable<`wallets.${string}`>;
