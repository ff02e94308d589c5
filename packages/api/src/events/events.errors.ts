import type { ErrorTable } from '../lib/error-table';

/** Resuming an event stream after a given event id. */
export const eventsErrors = {
  'events.expired': { transport: 'PRECONDITION_FAILED' },
  'events.invalid_id': { transport: 'BAD_REQUEST' },
} as const satisfies ErrorTable<`events.${string}`>;
