import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { withDatabase } from '../testing';
import { openDatabase, rowsOf } from './client';
import { users } from './schema';

// These run on PGlite even when TEST_DATABASE_URL is set, so CI covers both paths.
describe('embedded PGlite', () => {
  it('migrates, persists across restarts, and reports no pending migrations', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'smartspace-pglite-'));
    const first = await openDatabase({ dataDir });
    expect(await first.pendingMigrations()).toBeGreaterThan(0);
    await first.migrate();
    expect(await first.pendingMigrations()).toBe(0);
    await first.db
      .insert(users)
      .values({ email: 'kept@example.com', name: 'Kept', passwordHash: 'x' });
    await first.close();

    const second = await openDatabase({ dataDir });
    await second.migrate(); // idempotent
    expect(await second.pendingMigrations()).toBe(0);
    const rows = await second.db.select().from(users);
    expect(rows.map((r) => r.email)).toEqual(['kept@example.com']);
    await second.close();
  });

  it('the schema enforces normalised, unique emails', async () => {
    const db = await openDatabase({ dataDir: 'memory://' });
    await db.migrate();
    await expect(
      db.db.insert(users).values({ email: 'Upper@Example.com', name: 'U', passwordHash: 'x' }),
    ).rejects.toThrow();
    await db.db.insert(users).values({ email: 'a@example.com', name: 'A', passwordHash: 'x' });
    await expect(
      db.db.insert(users).values({ email: 'a@example.com', name: 'B', passwordHash: 'x' }),
    ).rejects.toThrow();
    await db.close();
  });
});

const url = process.env.TEST_DATABASE_URL;
describe.runIf(url)('PostgreSQL', () => {
  it('two instances migrating an empty database at once both succeed, once', async () => {
    if (!url) return;
    const name = `ss_mig_${randomBytes(4).toString('hex')}`;
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${name}"`);
    try {
      const a = await openDatabase({
        url: withDatabase(url, name),
        dataDir: 'unused',
        poolSize: 2,
      });
      const b = await openDatabase({
        url: withDatabase(url, name),
        dataDir: 'unused',
        poolSize: 2,
      });
      await Promise.all([a.migrate(), b.migrate()]);
      expect(await a.pendingMigrations()).toBe(0);
      expect(await b.pendingMigrations()).toBe(0);
      await a.close();
      await b.close();
    } finally {
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    }
  });

  it('statements with parameters are prepared once per connection, in transactions too', async () => {
    if (!url) return;
    const prepared = async (preparedStatements: boolean) => {
      // One connection: the statements prepared are that session's.
      const handle = await openDatabase({
        url,
        dataDir: 'unused',
        poolSize: 1,
        preparedStatements,
      });
      try {
        const probe = (db: typeof handle.db, n: number) =>
          db.execute(sql`select ${n}::int + 1 as v /* prepared-probe */`);
        for (const n of [1, 2, 3])
          expect(rowsOf(await probe(handle.db, n))).toEqual([{ v: n + 1 }]);
        await handle.db.transaction(async (tx) => {
          await probe(tx as unknown as typeof handle.db, 4);
          await tx.execute(sql`select ${'x'}::text as w /* prepared-in-tx */`);
        });
        const rows = rowsOf<{ statement: string }>(
          await handle.db.execute(sql`select statement from pg_prepared_statements`),
        );
        return rows.map((r) => r.statement.match(/prepared-(probe|in-tx)/)?.[1]).filter(Boolean);
      } finally {
        await handle.close();
      }
    };
    // Prepared: each text once (reused after), whether in a transaction or not.
    expect((await prepared(true)).sort()).toEqual(['in-tx', 'probe']);
    // Switched off (a pooler that cannot keep them): none.
    expect(await prepared(false)).toEqual([]);
  });
});
