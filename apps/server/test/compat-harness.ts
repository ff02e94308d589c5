import { type Api, createApi } from '@smartspace/api';
import {
  createTestDatabase,
  queryRows,
  sql,
  type TestDatabase,
  testConfig,
} from '@smartspace/api/testing';
import { closeClient, createClient, type SmartSpaceClient } from '@smartspace/client';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app';
import { createLogger } from '../src/logger';

const PASSWORD = 'correct horse battery staple';

import { WebSocketImpl } from './sockets';

/**
 * The real app (its /v1 endpoints included) on a fresh database (PostgreSQL or PGlite), plus
 * an account that owns a project and direct SQL for checking what the gateway recorded.
 * mock-echo is priced (1000 USD per million output tokens: 0.001 USDC per token) so that
 * charges and reservations are visible, and paced so that a stream can be cut mid-way.
 */
export interface CompatServer {
  app: FastifyInstance;
  api: Api;
  origin: string;
  owner: SmartSpaceClient;
  /** Raw reads of what the gateway recorded, on PostgreSQL or PGlite. */
  rows<T>(query: ReturnType<typeof sql>): Promise<T[]>;
  /** A new project and a key on it with `role`; the project id, key id and secret. */
  project(name: string, role?: 'viewer' | 'member' | 'admin'): Promise<KeyedProject>;
  close(): Promise<void>;
}

export interface KeyedProject {
  projectId: string;
  keyId: string;
  secret: string;
}

export const MOCK_PRICES = JSON.stringify({ 'mock-echo': { input: '0', output: '1000' } });

export async function startCompatServer(
  mockChunkDelayMs = 30,
  env: Record<string, string> = {},
): Promise<CompatServer> {
  const database: TestDatabase = await createTestDatabase();
  const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
  const api = await createApi({
    config: testConfig({ MODEL_PRICES: MOCK_PRICES, ...env }),
    database,
    migrate: false,
    log: logger,
    mockChunkDelayMs,
  });
  const app = await buildApp({ api, logger });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  const origin = `http://127.0.0.1:${address.port}`;
  const owner = createClient({ url: `${origin}/trpc`, WebSocket: WebSocketImpl });
  await owner.auth.register.mutate({
    email: `compat-${Date.now()}@example.com`,
    password: PASSWORD,
    name: 'Gateway Owner',
  });
  return {
    app,
    api,
    origin,
    owner,
    rows: (query) => queryRows(api.deps.db, query),
    async project(name, role = 'member') {
      const projectId = (await owner.projects.create.mutate({ name })).id;
      const created = await owner.apiKeys.create.mutate({ projectId, name: `${name} key`, role });
      return { projectId, keyId: created.key.id, secret: created.secret };
    },
    async close() {
      await closeClient(owner);
      api.connections.closeAll(1001, 'test server closing');
      await app.close();
      await api.close();
      await database.close();
    },
  };
}

export interface RequestRow {
  status: string;
  source: string;
  keyId: string | null;
  userId: string | null;
  errorCode: string | null;
  inputTokens: number;
  outputTokens: number;
  cost: string;
  reserved: string;
}

/** The project's api_requests rows, oldest first. */
export async function requestRows(server: CompatServer, projectId: string): Promise<RequestRow[]> {
  return server.rows<RequestRow>(sql`
    select status, source, key_id as "keyId", user_id as "userId", error_code as "errorCode",
      input_tokens as "inputTokens", output_tokens as "outputTokens",
      cost::text as cost, reserved::text as reserved
    from api_requests where project_id = ${projectId} order by created_at`);
}

/** Total still reserved on the project's budget limits. */
export async function budgetReserved(server: CompatServer, projectId: string): Promise<string> {
  // What the server leased ahead of calls goes back first: what is left is held by calls.
  await server.api.deps.gateway.releaseLeases();
  const [row] = await server.rows<{ reserved: string }>(sql`
    select coalesce(sum(u.reserved), 0)::text as reserved
    from budget_usage u join budget_limits l on l.id = u.limit_id
    where l.project_id = ${projectId}`);
  return row?.reserved ?? 'missing';
}

/** Polls until `check` passes (the server settles a cut call after the client has gone). */
export async function eventually<T>(read: () => Promise<T>, check: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const value = await read();
    if (check(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
}
