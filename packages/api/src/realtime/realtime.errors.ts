import type { ErrorTable } from '../lib/error-table';

/** Limits on WebSocket connections and their subscriptions. */
export const realtimeErrors = {
  'realtime.too_many_connections': { transport: 'TOO_MANY_REQUESTS' },
  'realtime.too_many_subscriptions': { transport: 'TOO_MANY_REQUESTS' },
} as const satisfies ErrorTable<`realtime.${string}`>;
