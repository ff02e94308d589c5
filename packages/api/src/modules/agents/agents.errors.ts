import type { ErrorTable } from '../../lib/error-table';

/** Agent definitions. */
export const agentsErrors = {
  'agents.not_found': { transport: 'NOT_FOUND' },
  'agents.invalid': { transport: 'BAD_REQUEST' },
  'agents.name_taken': { transport: 'CONFLICT' },
  'agents.inactive': { transport: 'PRECONDITION_FAILED' },
} as const satisfies ErrorTable<`agents.${string}`>;
