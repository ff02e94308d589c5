import type { ErrorTable } from '../../lib/error-table';

/** Projects and their members; a non-member meets projects.not_found, never a hint. */
export const projectsErrors = {
  'projects.not_found': { transport: 'NOT_FOUND' },
  'projects.role_insufficient': { transport: 'FORBIDDEN' },
  'projects.owner_required': { transport: 'FORBIDDEN' },
  'projects.last_owner': { transport: 'CONFLICT' },
  'projects.member_exists': { transport: 'CONFLICT' },
  'projects.member_not_found': { transport: 'NOT_FOUND' },
  'projects.access_revoked': { transport: 'FORBIDDEN' },
} as const satisfies ErrorTable<`projects.${string}`>;
