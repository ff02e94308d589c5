import { createServer, type Server, type Socket } from 'node:net';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isServiceUnavailable } from '../lib/unavailable';
import { createTestDatabase, proxyDatabaseUrl, type TcpProxy, type TestDatabase } from '../testing';
import { type DatabaseHandle, openDatabase, rowsOf } from './client';

/**
 * A PostgreSQL pool that cannot reach its server fails fast, with errors classified as an
 * outage. The first suite needs no PostgreSQL at all (a closed port, a
 * server that accepts and never answers), so it runs everywhere; the second needs a real one.
 */
const CONNECT_MS = 300;
const STATEMENT_MS = 400;
/** Connect + statement timeouts + the 0.5 s grace, and a margin for a busy machine. */
const ANSWER_BOUND_MS = CONNECT_MS + STATEMENT_MS + 500 + 700;

async function failure(work: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = performance.now();
  const error = await work.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, 'expected the query to fail').not.toBeNull();
  return { error, ms: performance.now() - started };
}

function codeOf(error: unknown): unknown {
  let e = error as { code?: unknown; cause?: unknown } | undefined;
  while (e && e.code === undefined) e = e.cause as typeof e;
  return e?.code;
}

describe('no server to talk to', () => {
  const sockets = new Set<Socket>();
  let silent: Server;
  let silentPort = 0;
  let closedPort = 0;
  beforeAll(async () => {
    // Accepts connections and never answers: a frozen host, a black-holed network.
    silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    silentPort = await listen(silent);
    const closed = createServer();
    closedPort = await listen(closed);
    await new Promise((r) => closed.close(r));
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  });

  const open = (port: number, poolSize = 2) =>
    openDatabase({
      url: `postgres://postgres@127.0.0.1:${port}/nowhere`,
      dataDir: 'unused',
      poolSize,
      connectTimeoutMs: CONNECT_MS,
      statementTimeoutMs: STATEMENT_MS,
    });

  it('refused: every query fails at once, also after many failures in a row', async () => {
    const db = await open(closedPort);
    try {
      // postgres.js's own reconnect backoff grows to 20 s, and queries waited for it.
      for (let i = 0; i < 12; i += 1) {
        const { error, ms } = await failure(db.db.execute(sql`select 1`));
        expect(codeOf(error)).toBe('ECONNREFUSED');
        expect(isServiceUnavailable(error)).toBe(true);
        expect(ms).toBeLessThan(1_000);
      }
    } finally {
      await db.close();
    }
  });

  it('accepted but never answered: the handshake times out', async () => {
    const db = await open(silentPort);
    try {
      const { error, ms } = await failure(db.db.execute(sql`select 1`));
      expect(codeOf(error)).toBe('CONNECT_TIMEOUT');
      expect(isServiceUnavailable(error)).toBe(true);
      expect(ms).toBeLessThan(ANSWER_BOUND_MS);
    } finally {
      await db.close();
    }
  });

  it('more queries than connections: none waits unbounded for one', async () => {
    const db = await open(silentPort, 2);
    try {
      const all = await Promise.all(
        Array.from({ length: 10 }, () => failure(db.db.execute(sql`select 1`))),
      );
      for (const { error, ms } of all) {
        expect(isServiceUnavailable(error)).toBe(true);
        expect(ms).toBeLessThan(ANSWER_BOUND_MS);
      }
      expect(new Set(all.map((f) => codeOf(f.error)))).toEqual(
        new Set(['CONNECT_TIMEOUT', 'POOL_TIMEOUT']),
      );
    } finally {
      await db.close();
    }
  });
});

describe.runIf(process.env.TEST_DATABASE_URL)('a real PostgreSQL behind a proxy', () => {
  let database: TestDatabase;
  let proxy: TcpProxy;
  let handle: DatabaseHandle;
  beforeAll(async () => {
    database = await createTestDatabase();
    const proxied = await proxyDatabaseUrl(database.url ?? '');
    proxy = proxied.proxy;
    handle = await openDatabase({
      url: proxied.url,
      dataDir: 'unused',
      poolSize: 2,
      connectTimeoutMs: CONNECT_MS,
      statementTimeoutMs: STATEMENT_MS,
    });
  });
  afterAll(async () => {
    await handle?.close();
    await proxy?.close();
    await database?.close();
  });

  const one = async () =>
    rowsOf<{ n: number }>(await handle.db.execute(sql`select 1::int as n`))[0]?.n;

  it('permits come back however a statement ends: many more statements than connections', async () => {
    // 2 connections: 60 statements at once, a third of them failing, all answered in turn.
    const all = await Promise.allSettled(
      Array.from({ length: 60 }, (_, i) =>
        handle.db.execute(i % 3 === 0 ? sql`select 1 / 0` : sql`select ${i}::int as n`),
      ),
    );
    all.forEach((r, i) => {
      if (i % 3 === 0) {
        expect(r.status).toBe('rejected');
        const error = (r as PromiseRejectedResult).reason;
        expect(codeOf(error)).toBe('22012');
        expect(isServiceUnavailable(error)).toBe(false);
      } else {
        expect(r.status).toBe('fulfilled');
        const rows = rowsOf<{ n: number }>((r as PromiseFulfilledResult<unknown>).value);
        expect(rows[0]?.n).toBe(i);
      }
    });
    // Both permits are free again: two transactions hold them at once, then a statement runs.
    await Promise.all(
      [0, 1].map(() => handle.db.transaction(async (t) => void (await t.execute(sql`select 1`)))),
    );
    expect(await one()).toBe(1);
  });

  it('statement_timeout is set on pool connections, and hitting it is an outage', async () => {
    const [row] = rowsOf<{ statement_timeout: string }>(
      await handle.db.execute(sql`show statement_timeout`),
    );
    expect(row?.statement_timeout).toBe(`${STATEMENT_MS}ms`);
    const { error, ms } = await failure(handle.db.execute(sql`select pg_sleep(5)`));
    expect(codeOf(error)).toBe('57014');
    expect(isServiceUnavailable(error)).toBe(true);
    expect(ms).toBeLessThan(ANSWER_BOUND_MS);
  });

  it('a connection that stops answering mid-query: given up in time, then recovered', async () => {
    expect(await one()).toBe(1);
    proxy.blackhole();
    try {
      const { error, ms } = await failure(handle.db.execute(sql`select 2`));
      expect(isServiceUnavailable(error)).toBe(true);
      expect(ms).toBeLessThan(ANSWER_BOUND_MS);
      // A transaction stuck on it returns too, though its rollback cannot be answered.
      const tx = await failure(
        handle.db.transaction(async (t) => {
          await t.execute(sql`select 3`);
        }),
      );
      expect(isServiceUnavailable(tx.error)).toBe(true);
      expect(tx.ms).toBeLessThan(ANSWER_BOUND_MS);
    } finally {
      await proxy.up();
    }
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await one().catch(() => null)) !== 1) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await one()).toBe(1);
  });

  it('transactions hold a connection: others wait for a free one, bounded', async () => {
    const holding = [0, 1].map(() =>
      handle.db.transaction(async (t) => {
        await t.execute(sql`select pg_sleep(0.2)`);
        await new Promise((r) => setTimeout(r, CONNECT_MS + 200));
      }),
    );
    await new Promise((r) => setTimeout(r, 100));
    const { error } = await failure(handle.db.execute(sql`select 1`));
    expect(codeOf(error)).toBe('POOL_TIMEOUT');
    expect(isServiceUnavailable(error)).toBe(true);
    await Promise.all(holding);
    expect(await one()).toBe(1);
  });

  it('a server that ends the session is an outage; our own closed pool is not', async () => {
    const other = await openDatabase({ url: database.url ?? '', dataDir: 'unused', poolSize: 1 });
    try {
      const sleeping = failure(handle.db.execute(sql`select pg_sleep(0.3), 'victim' as tag`));
      await new Promise((r) => setTimeout(r, 100));
      await other.db.execute(sql`select pg_terminate_backend(pid) from pg_stat_activity
        where query like '%''victim''%' and pid <> pg_backend_pid()`);
      const { error } = await sleeping;
      // postgres.js reports the server's 57P01 admin_shutdown as the connection closing.
      expect(['57P01', 'CONNECTION_CLOSED']).toContain(codeOf(error));
      expect(isServiceUnavailable(error)).toBe(true);
    } finally {
      await other.close();
    }
    const closed = await openDatabase({ url: database.url ?? '', dataDir: 'unused' });
    await closed.close();
    const { error } = await failure(closed.db.execute(sql`select 1`));
    expect(isServiceUnavailable(error)).toBe(false);
  });
});

function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : 0);
    }),
  );
}
