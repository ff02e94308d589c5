import { z } from 'zod';
import { int, setting } from '../lib/settings';

/** WebSocket limits and the durable event log behind resumable subscriptions. */
export const realtimeConfig = {
  realtime: {
    maxConnectionsPerUser: setting({
      env: 'WS_MAX_CONNECTIONS_PER_USER',
      schema: int(1, 10_000),
      default: '20',
      doc: 'open sockets per user; more are closed with 4008',
    }),
    maxSubscriptionsPerConnection: setting({
      env: 'WS_MAX_SUBSCRIPTIONS_PER_CONNECTION',
      schema: int(1, 10_000),
      default: '100',
      doc: 'live subscriptions per socket',
    }),
    maxPayloadBytes: setting({
      env: 'WS_MAX_PAYLOAD_BYTES',
      schema: int(1024, 16 * 1024 * 1024),
      default: '65536',
      doc: 'larger frames close the socket (1009)',
    }),
    maxAnonymousPerIp: setting({
      env: 'WS_MAX_ANONYMOUS_PER_IP',
      schema: int(1, 10_000),
      default: '20',
      doc: 'sockets without a valid access token one address may hold past their first 2 s',
    }),
    authTimeoutMs: setting({
      env: 'WS_AUTH_TIMEOUT_MS',
      schema: int(100, 600_000),
      default: '10000',
      doc: 'a socket still without a valid access token this long after opening is closed',
    }),
    eventRetentionMs: setting({
      env: 'EVENT_RETENTION_HOURS',
      schema: z.coerce
        .number()
        .positive()
        .max(24 * 365)
        .transform((hours) => Math.round(hours * 3_600_000)),
      default: '72',
      doc: 'events older than this are pruned; resuming from before it is refused',
    }),
  },
};
