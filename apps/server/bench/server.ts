/**
 * The server under test, run as a child of run.ts so that load generation does not share its
 * event loop: the real app (buildApp) plus bench-only baseline routes on the same instance.
 * Reports `{ type: 'ready', ... }` over IPC and shuts down when the parent disconnects.
 */
import { randomBytes } from 'node:crypto';
import { createApi, type DatabaseHandle, loadConfig } from '@smartspace/api';
import { createTestDatabase } from '@smartspace/api/testing';
import { initTRPC } from '@trpc/server';
import { fastifyTRPCPlugin } from '@trpc/server/adapters/fastify';
import type { Sql } from 'postgres';
import { buildApp } from '../src/app';
import { createLogger } from '../src/logger';
import { trpcPlugin } from '../src/plugins/trpc';

export interface ReadyMessage {
  type: 'ready';
  port: number;
  database: string;
}

// The same columns drizzle selects for `users.me` (select * by primary key).
const USER_BY_ID =
  'select "id", "email", "name", "password_hash", "role", "active", "created_at", "updated_at" ' +
  'from "users" where "id" = $1';

interface UserRow {
  id: string;
  email: string;
  name: string;
  role: string;
  created_at: Date | string;
}

/** Minimal shape of the PGlite client drizzle wraps. */
interface PgliteClient {
  query<T>(text: string, params: unknown[]): Promise<{ rows: T[] }>;
}

type Query = <T>(text: string, params?: string[]) => Promise<T[]>;

/**
 * Raw queries straight through the driver that drizzle wraps (same pool, no ORM), prepared
 * as postgres.js prepares its tagged templates: one round trip per read. (Unprepared, a
 * statement with parameters costs postgres.js two: until this was fixed the app paid that
 * too, and so did this baseline.)
 */
function driverQuery(database: DatabaseHandle): Query {
  const client: unknown = (database.db as unknown as { $client: unknown }).$client;
  if (database.kind === 'postgres') {
    const sql = client as Sql;
    return async <T>(text: string, params: string[] = []) =>
      (await sql.unsafe(text, params, { prepare: true })) as unknown as T[];
  }
  const pglite = client as PgliteClient;
  return async <T>(text: string, params: string[] = []) =>
    (await pglite.query<T>(text, params)).rows;
}

async function main(): Promise<void> {
  const database = await createTestDatabase();
  const logger = createLogger('silent');
  const config = loadConfig({
    NODE_ENV: 'production',
    JWT_SECRET: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'silent',
    RATE_LIMIT_PER_MINUTE: '0',
    LOGIN_ATTEMPTS_PER_15_MINUTES: '10000',
  });
  const api = await createApi({ config, database, migrate: false, log: logger });
  const app = await buildApp({ api, logger });

  // Baseline 1: plain Fastify JSON (still behind the app's global hooks: request id, CORS).
  app.get('/bench/raw', async () => ({ ok: true }));

  // Baseline 2: Fastify + driver, one primary-key read of a users row.
  const query = driverQuery(database);
  app.get<{ Querystring: { id?: string } }>('/bench/raw-pk', async (req, reply) => {
    const [row] = await query<UserRow>(USER_BY_ID, [req.query.id ?? '']);
    if (!row) return reply.status(404).send({ error: 'not found' });
    return {
      id: row.id,
      email: row.email,
      name: row.name,
      role: row.role,
      createdAt: row.created_at,
    };
  });

  // tRPC adapter overhead with no database: a one-procedure router on its own prefix.
  const t = initTRPC.create();
  const benchRouter = t.router({ ping: t.procedure.query(() => ({ ok: true })) });
  // Through the app's own HTTP path, and through the stock adapter for comparison.
  await app.register(trpcPlugin, {
    mountPath: '/bench-trpc',
    router: benchRouter,
    maxBatchSize: 20,
    createContext: () => ({}),
    onError: () => {},
  });
  await app.register(fastifyTRPCPlugin, {
    prefix: '/bench-trpc-stock',
    trpcOptions: { router: benchRouter, createContext: () => ({}) },
  });

  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('server has no port');

  const [version] = await query<{ v: string }>("select current_setting('server_version') as v");
  const kind =
    database.kind === 'postgres' ? 'PostgreSQL (cloned test database)' : 'PGlite (in memory)';

  let closing = false;
  const shutdown = async () => {
    if (closing) return;
    closing = true;
    await app.close();
    await api.close();
    await database.close();
    process.exit(0);
  };
  process.on('disconnect', shutdown);
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);

  const ready: ReadyMessage = {
    type: 'ready',
    port: address.port,
    database: `${kind} ${version?.v ?? '?'}`,
  };
  process.send?.(ready);
}

main().catch((err: unknown) => {
  console.error('bench server failed:', err);
  process.exit(1);
});
