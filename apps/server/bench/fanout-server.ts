/**
 * The fan-out bench's app child (started with --expose-gc): the real app (buildApp +
 * createApi) serving chat.onEvent over /trpc. Publishes bench deltas through the app's own
 * event bus (api.deps.bus.publish: stored event, NOTIFY, per-subscriber delivery) when the
 * parent asks over IPC. Shuts down, dropping its database, when the parent disconnects.
 */
import { randomBytes } from 'node:crypto';
import { createApi, loadConfig } from '@smartspace/api';
import { createTestDatabase } from '@smartspace/api/testing';
import { buildApp } from '../src/app';
import { createLogger } from '../src/logger';
import { type FanoutReady, serveControl } from './fanout-protocol';

/** The topic chat.onEvent subscribes to (conversationTopic in chat.dto.ts). */
const conversationTopic = (conversationId: string) => `conversation:${conversationId}`;

async function main(): Promise<void> {
  const database = await createTestDatabase();
  const logger = createLogger('silent');
  const config = loadConfig({
    NODE_ENV: 'production',
    JWT_SECRET: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'silent',
    RATE_LIMIT_PER_MINUTE: '0',
    LOGIN_ATTEMPTS_PER_15_MINUTES: '10000',
    // All subscribers are one user: lift the per-user socket cap to its maximum.
    WS_MAX_CONNECTIONS_PER_USER: '10000',
    // Thousands of sockets from one address, each anonymous until its connectionParams land.
    WS_MAX_ANONYMOUS_PER_IP: '10000',
  });
  const api = await createApi({ config, database, migrate: false, log: logger });
  const app = await buildApp({ api, logger });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('server has no port');

  serveControl({
    publishOne: (conversationId, delta) =>
      api.deps.bus.publish({
        topic: conversationTopic(conversationId),
        type: 'reply.delta',
        payload: delta,
      }),
    sockets: () => api.connections.size,
  });

  let closing = false;
  const shutdown = async () => {
    if (closing) return;
    closing = true;
    // Whatever sockets are left would hold app.close() open; they are the parent's anyway.
    api.connections.closeAll(1001, 'bench over');
    await app.close();
    await api.close();
    await database.close();
    process.exit(0);
  };
  process.on('disconnect', shutdown);
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);

  const kind =
    database.kind === 'postgres' ? 'PostgreSQL (cloned test database)' : 'PGlite (in memory)';
  const ready: FanoutReady = {
    type: 'ready',
    port: address.port,
    description: `real app (buildApp + createApi, tRPC over @fastify/websocket), ${kind}`,
  };
  process.send?.(ready);
}

main().catch((err: unknown) => {
  console.error('fan-out app server failed:', err);
  process.exit(1);
});
