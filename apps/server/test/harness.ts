import { type Api, createApi, type DatabaseHandle } from '@smartspace/api';
import { createTestDatabase, testConfig } from '@smartspace/api/testing';
import type { FastifyInstance } from 'fastify';
import type { DestinationStream } from 'pino';
import { buildApp } from '../src/app';
import { createLogger } from '../src/logger';

export interface TestServer {
  app: FastifyInstance;
  api: Api;
  /** `http://127.0.0.1:<port>` */
  origin: string;
  close(): Promise<void>;
}

/** The real app on an ephemeral port, over a fresh test database. */
export async function startTestServer(
  env: Record<string, string> = {},
  opts: { logs?: DestinationStream; database?: DatabaseHandle } = {},
): Promise<TestServer> {
  const database = opts.database ?? (await createTestDatabase());
  const logger = opts.logs
    ? createLogger('info', opts.logs)
    : createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
  const api = await createApi({ config: testConfig(env), database, migrate: false, log: logger });
  const app = await buildApp({ api, logger });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return {
    app,
    api,
    origin: `http://127.0.0.1:${address.port}`,
    async close() {
      api.connections.closeAll(1001, 'test server closing');
      await app.close();
      await api.close();
      await database.close();
    },
  };
}
