import type { ErrorTable } from '../../lib/error-table';

/**
 * Project API keys. The `auth.key_*` codes answer a call made with a key that no longer
 * works; a key that never existed gets `auth.unauthenticated` like any bad token.
 */
export const apiKeysErrors = {
  'apiKeys.not_found': { transport: 'NOT_FOUND' },
  'apiKeys.role_exceeds_yours': { transport: 'FORBIDDEN' },
  'apiKeys.already_revoked': { transport: 'CONFLICT' },
  'auth.key_revoked': { transport: 'UNAUTHORIZED' },
  'auth.key_expired': { transport: 'UNAUTHORIZED' },
  'auth.key_not_allowed': { transport: 'FORBIDDEN' },
} as const satisfies ErrorTable<`apiKeys.${string}` | `auth.key_${string}`>;
