import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import { type DatabaseHandle, migrationsFolder, openDatabase } from '../db/client';

/**
 * One database per test file. With TEST_DATABASE_URL (CI), each is cloned from a template
 * that the real migrations built once; otherwise an in-memory PGlite, migrated the same way.
 */
export interface TestDatabase extends DatabaseHandle {
  /** Its PostgreSQL URL, for other processes; null on PGlite (one process only). */
  url: string | null;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) {
    const handle = await openDatabase({ dataDir: 'memory://' });
    await handle.migrate();
    return { ...handle, url: null };
  }
  const template = await ensureTemplate(url);
  const name = `ss_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}" template "${template}"`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  const dbUrl = withDatabase(url, name);
  const handle = await openDatabase({ url: dbUrl, dataDir: 'unused', poolSize: 20 });
  return {
    ...handle,
    url: dbUrl,
    async close() {
      await handle.close();
      const drop = postgres(url, { max: 1, onnotice: () => {} });
      try {
        await drop.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await drop.end({ timeout: 5 });
      }
    },
  };
}

/** A URL pointing at another database on the same server. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

function migrationsDigest(): string {
  const h = createHash('sha256');
  for (const f of readdirSync(migrationsFolder)
    .filter((f) => f.endsWith('.sql'))
    .sort()) {
    h.update(f).update(readFileSync(join(migrationsFolder, f)));
  }
  return h.digest('hex').slice(0, 12);
}

async function ensureTemplate(url: string): Promise<string> {
  const template = `ss_template_${migrationsDigest()}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  try {
    // Test files start in parallel; one builds the template while the others wait.
    await admin`select pg_advisory_lock(727274099)`;
    const [exists] = await admin`select 1 from pg_database where datname = ${template}`;
    if (!exists) {
      const building = `${template}_building`;
      await admin.unsafe(`drop database if exists "${building}" with (force)`);
      await admin.unsafe(`create database "${building}"`);
      const handle = await openDatabase({
        url: withDatabase(url, building),
        dataDir: 'unused',
        poolSize: 1,
      });
      await handle.migrate();
      await handle.close();
      await admin.unsafe(`alter database "${building}" rename to "${template}"`);
    }
    await admin`select pg_advisory_unlock(727274099)`;
  } finally {
    await admin.end({ timeout: 5 });
  }
  return template;
}
