import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { type PoolStats, poolStatsOf, withBounds, within } from './bounds';
import * as schema from './schema';

export type Schema = typeof schema;
/** A database or a transaction: services take either, so they compose inside one transaction. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;

export interface DatabaseHandle {
  db: Db;
  kind: 'postgres' | 'pglite';
  /** Applies pending migrations; safe to call from several instances at once. */
  migrate(): Promise<void>;
  /** Number of committed migrations not yet applied to this database. */
  pendingMigrations(): Promise<number>;
  /**
   * LISTEN on a channel (a dedicated connection on PostgreSQL); resolves to unlisten.
   * `onListen` runs each time the LISTEN is (re)established: notifications sent while that
   * connection was down are lost, so whatever they keep fresh is stale from then on.
   */
  listen(
    channel: string,
    onPayload: (payload: string) => void,
    onListen?: () => void,
  ): Promise<() => Promise<void>>;
  /**
   * Tries to take a session-level advisory lock on a dedicated connection and keep it until
   * `release()` (or until that connection dies); null when another holder has it. Used to
   * elect one instance for singleton background work. On PGlite (one process) it is an
   * in-process lock.
   */
  tryAdvisoryLock(key: number): Promise<AdvisoryLock | null>;
  /** PostgreSQL: the connection permits in use and the callers waiting (metrics). */
  poolStats?(): PoolStats;
  close(): Promise<void>;
}

export interface AdvisoryLock {
  /** Whether this holder still has the lock (false once its connection was lost). */
  held(): Promise<boolean>;
  release(): Promise<void>;
}

export const migrationsFolder = join(dirname(fileURLToPath(import.meta.url)), '../../drizzle');
// Any constant works; it only has to be the same for every instance of this app.
const MIGRATION_LOCK_ID = 727_274_001;

function journalEntries(): number {
  const journal = JSON.parse(readFileSync(join(migrationsFolder, 'meta/_journal.json'), 'utf8'));
  return (journal.entries as unknown[]).length;
}

/** Rows of `db.execute`: postgres.js answers an array, PGlite an object with `rows`. */
export function rowsOf<T>(result: unknown): T[] {
  return Array.isArray(result) ? (result as T[]) : ((result as { rows: T[] }).rows ?? []);
}

/** Throws when the database cannot be reached; 0 when no migration has run yet. */
async function countApplied(db: Db): Promise<number> {
  const [exists] = rowsOf<{ t: string | null }>(
    await db.execute(sql`select to_regclass('drizzle.__drizzle_migrations')::text as t`),
  );
  if (!exists?.t) return 0;
  const [row] = rowsOf<{ n: number }>(
    await db.execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations`),
  );
  return Number(row?.n ?? 0);
}

export interface OpenDatabaseOptions {
  /** PostgreSQL URL; when absent the embedded PGlite is used. */
  url?: string | undefined;
  /** Where PGlite keeps its files; `memory://` for a throw-away database. */
  dataDir: string;
  poolSize?: number;
  /** PostgreSQL: connection handshake bound, and the longest wait for a pool connection. */
  connectTimeoutMs?: number;
  /** PostgreSQL: statement_timeout of pool connections. */
  statementTimeoutMs?: number;
  /** PostgreSQL: prepare statements with parameters (see bounds.ts); default true. */
  preparedStatements?: boolean;
}

type PostgresLimits = Required<
  Pick<
    OpenDatabaseOptions,
    'poolSize' | 'connectTimeoutMs' | 'statementTimeoutMs' | 'preparedStatements'
  >
>;

export async function openDatabase(opts: OpenDatabaseOptions): Promise<DatabaseHandle> {
  if (!opts.url) return openPglite(opts.dataDir);
  return openPostgres(opts.url, {
    poolSize: opts.poolSize ?? 10,
    connectTimeoutMs: opts.connectTimeoutMs ?? 5_000,
    statementTimeoutMs: opts.statementTimeoutMs ?? 15_000,
    preparedStatements: opts.preparedStatements ?? true,
  });
}

/** Room for a statement_timeout error to travel back before the client gives up itself. */
const ANSWER_GRACE_MS = 500;

/**
 * Seconds before a connection retries after a failed attempt. postgres.js's default grows
 * to 20 s, and queries wait for it: during an outage every call hung up to 20 s before
 * failing. Attempts are made on demand (and by the one LISTEN
 * connection), so a short cap costs the database little and puts a recovered one to use at
 * once.
 */
function reconnectDelaySeconds(retries: number): number {
  return Math.min(0.05 * 2 ** retries, 0.5) * (0.5 + Math.random() / 2);
}

async function openPostgres(url: string, limits: PostgresLimits): Promise<DatabaseHandle> {
  const { default: postgres } = await import('postgres');
  const { drizzle } = await import('drizzle-orm/postgres-js');
  const { migrate } = await import('drizzle-orm/postgres-js/migrator');
  const connectTimeout = limits.connectTimeoutMs / 1000;
  const client = postgres(url, {
    max: limits.poolSize,
    onnotice: () => {},
    connect_timeout: connectTimeout,
    backoff: reconnectDelaySeconds,
    connection: { application_name: 'smartspace', statement_timeout: limits.statementTimeoutMs },
  });
  const answerMs = limits.connectTimeoutMs + limits.statementTimeoutMs + ANSWER_GRACE_MS;
  const bounded = withBounds(client, {
    size: limits.poolSize,
    acquireMs: limits.connectTimeoutMs,
    answerMs,
    prepare: limits.preparedStatements,
  });
  const db = drizzle(bounded, { schema }) as unknown as Db;
  return {
    db,
    kind: 'postgres',
    poolStats: () => poolStatsOf(bounded),
    async migrate() {
      // A session-level advisory lock needs one connection for lock, migrate and unlock.
      // No statement_timeout: a migration may rightly take long, or wait for the lock.
      const single = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: connectTimeout });
      try {
        await single`select pg_advisory_lock(${MIGRATION_LOCK_ID})`;
        await migrate(drizzle(single), { migrationsFolder });
        await single`select pg_advisory_unlock(${MIGRATION_LOCK_ID})`;
      } finally {
        await single.end({ timeout: 5 });
      }
    },
    async pendingMigrations() {
      return Math.max(0, journalEntries() - (await countApplied(db)));
    },
    async listen(channel, onPayload, onListen) {
      const sub = await client.listen(channel, onPayload, onListen);
      return () => sub.unlisten();
    },
    async tryAdvisoryLock(key) {
      // Outside the pool, so holding it never starves queries. postgres.js would silently
      // reconnect a dropped connection without the lock: held() asks the server instead.
      const own = postgres(url, {
        max: 1,
        // Never recycled: a new session would not hold the lock.
        max_lifetime: null,
        onnotice: () => {},
        connect_timeout: connectTimeout,
        connection: {
          application_name: 'smartspace-lock',
          statement_timeout: limits.statementTimeoutMs,
        },
      });
      try {
        const [row] = await own`select pg_try_advisory_lock(${key}) as ok`;
        if (row?.ok !== true) {
          await own.end({ timeout: 5 });
          return null;
        }
      } catch (err) {
        await own.end({ timeout: 5 });
        throw err;
      }
      return {
        async held() {
          try {
            // Bounded: a server that stopped answering must not stall the holder's loop.
            const [row] = await within(
              own`select exists (select 1 from pg_locks where locktype = 'advisory'
                and objid = ${key} and pid = pg_backend_pid() and granted) as held`,
              answerMs,
            );
            return row?.held === true;
          } catch {
            return false;
          }
        },
        async release() {
          // Ending the session releases it whatever state the connection is in.
          await own.end({ timeout: 5 });
        },
      };
    },
    async close() {
      await client.end({ timeout: 5 });
    },
  };
}

async function openPglite(dataDir: string): Promise<DatabaseHandle> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { drizzle } = await import('drizzle-orm/pglite');
  const { migrate } = await import('drizzle-orm/pglite/migrator');
  // Trigram indexes serve the users search (migration 0025), as on PostgreSQL.
  const { pg_trgm } = await import('@electric-sql/pglite/contrib/pg_trgm');
  const memory = dataDir.startsWith('memory://');
  const path = memory ? dataDir : join(dataDir, 'pgdata');
  if (!memory) await mkdir(path, { recursive: true });
  const client = await PGlite.create(path, { extensions: { pg_trgm } });
  const db = drizzle(client, { schema }) as unknown as Db;
  const locks = new Set<number>();
  return {
    db,
    kind: 'pglite',
    async migrate() {
      // One process owns a PGlite directory, so there is nobody to race.
      await migrate(drizzle(client), { migrationsFolder });
    },
    async pendingMigrations() {
      return Math.max(0, journalEntries() - (await countApplied(db)));
    },
    async listen(channel, onPayload) {
      const unlisten = await client.listen(channel, onPayload);
      return async () => {
        if (!client.closed) await unlisten();
      };
    },
    async tryAdvisoryLock(key) {
      if (locks.has(key)) return null;
      locks.add(key);
      return {
        held: async () => locks.has(key) && !client.closed,
        release: async () => {
          locks.delete(key);
        },
      };
    },
    async close() {
      if (!client.closed) await client.close();
    },
  };
}
