/**
 * The compat bench's server (a child of compat.ts): the real app, its Claude adapter pointed
 * at the bench upstream (ANTHROPIC_BASE_URL, handed in by the parent), on a fresh test
 * database with two projects and a key on each: one with a budget limit that never denies
 * (every call takes the reservation path, all on that limit's one usage row), one without
 * (metering only).
 * Reports `{ type: 'ready', ... }` over IPC; on a `books` message, answers what the gateway
 * recorded; shuts down when the parent disconnects.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createApi, createCaller, loadConfig } from '@smartspace/api';
import { createTestDatabase, queryRows, sql } from '@smartspace/api/testing';
import { buildApp } from '../src/app';
import { createLogger } from '../src/logger';
import type { CompatBooks, CompatServerReady } from './compat-protocol';

async function main(): Promise<void> {
  const upstream = process.env.BENCH_UPSTREAM_URL;
  if (!upstream) throw new Error('BENCH_UPSTREAM_URL is not set');
  const database = await createTestDatabase();
  const logger = createLogger('silent');
  const config = loadConfig({
    NODE_ENV: 'production',
    JWT_SECRET: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'silent',
    RATE_LIMIT_PER_MINUTE: '0',
    ANTHROPIC_API_KEY: 'bench-upstream-key',
    ANTHROPIC_BASE_URL: upstream,
    ANTHROPIC_MAX_RETRIES: '0',
  });
  const api = await createApi({ config, database, migrate: false, log: logger });
  const app = await buildApp({ api, logger });

  const caller = (token: string | null) =>
    createCaller(api.createContext({ token, ip: '127.0.0.1', requestId: randomUUID() }));
  const session = await caller(null).auth.register({
    email: `compat.bench.${Date.now()}@example.com`,
    password: 'correct horse battery staple',
    name: 'Compat bench',
  });
  const owner = caller(session.accessToken);
  const keyed = async (name: string) => {
    const { id } = await owner.projects.create({ name });
    const { secret } = await owner.apiKeys.create({ projectId: id, name, role: 'member' });
    return { id, secret };
  };
  const limited = await keyed('Compat bench, limited');
  const metered = await keyed('Compat bench, metered');
  // A limit far above what a run spends: every call reserves on it, none is denied.
  await owner.budgets.setLimit({
    projectId: limited.id,
    scope: 'project',
    period: 'month',
    amount: '1000000',
  });

  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('server has no port');

  const books = async (): Promise<CompatBooks> => {
    // What the server holds in advance (budget leases) goes back first.
    await api.deps.gateway.releaseLeases();
    const rows = await queryRows<{ status: string; n: number }>(
      api.deps.db,
      sql`select status::text as status, count(*)::int as n from api_requests
        where project_id in (${limited.id}, ${metered.id}) group by status`,
    );
    const [held] = await queryRows<{ reserved: string }>(
      api.deps.db,
      sql`select ((select coalesce(sum(reserved), 0) from api_requests
          where project_id in (${limited.id}, ${metered.id}))
        + (select coalesce(sum(u.reserved), 0) from budget_usage u
          join budget_limits l on l.id = u.limit_id where l.project_id = ${limited.id}))::text
        as reserved`,
    );
    return {
      type: 'books',
      statuses: Object.fromEntries(rows.map((r) => [r.status, Number(r.n)])),
      reserved: held?.reserved ?? 'missing',
    };
  };
  process.on('message', (m: { type?: string }) => {
    if (m.type === 'books') void books().then((b) => process.send?.(b));
  });

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

  const kind =
    database.kind === 'postgres' ? 'PostgreSQL (cloned test database)' : 'PGlite (in memory)';
  const ready: CompatServerReady = {
    type: 'ready',
    port: address.port,
    limitedSecret: limited.secret,
    meteredSecret: metered.secret,
    database: kind,
  };
  process.send?.(ready);
}

main().catch((err: unknown) => {
  console.error('compat bench server failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
