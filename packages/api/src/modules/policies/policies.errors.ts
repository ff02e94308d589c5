import type { ErrorTable } from '../../lib/error-table';

/** Project policies the gateway enforces before a model call. */
export const policiesErrors = {
  'policy.model_not_allowed': { transport: 'FORBIDDEN' },
  'policy.cost_limit': { transport: 'FORBIDDEN' },
} as const satisfies ErrorTable<`policy.${string}`>;
