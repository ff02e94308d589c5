import { randomBytes, randomUUID } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DatabaseHandle, migrationsFolder, openDatabase, rowsOf } from '../../db/client';
import { isUniqueViolation } from '../../lib/db-errors';
import { withDatabase } from '../../testing';

const MERGE = '0014_budget_limit_identity';

/** A copy of the migrations folder whose journal stops before `tag`. */
function migrationsBefore(tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'smartspace-migrations-'));
  cpSync(migrationsFolder, dir, { recursive: true });
  const path = join(dir, 'meta/_journal.json');
  const journal = JSON.parse(readFileSync(path, 'utf8')) as { entries: { tag: string }[] };
  const at = journal.entries.findIndex((e) => e.tag === tag);
  if (at < 0) throw new Error(`no migration ${tag}`);
  journal.entries = journal.entries.slice(0, at);
  writeFileSync(path, JSON.stringify(journal));
  return dir;
}

/** An empty database of its own (not the migrated template): PostgreSQL or PGlite. */
async function emptyDatabase(): Promise<{ handle: DatabaseHandle; drop(): Promise<void> }> {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) {
    const handle = await openDatabase({ dataDir: 'memory://' });
    return { handle, drop: () => handle.close() };
  }
  const name = `ss_merge_${randomBytes(6).toString('hex')}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  const handle = await openDatabase({ url: withDatabase(url, name), dataDir: 'unused' });
  return {
    handle,
    async drop() {
      await handle.close();
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end({ timeout: 5 });
    },
  };
}

async function migrateWith(handle: DatabaseHandle, folder: string) {
  const { migrate } =
    handle.kind === 'pglite'
      ? await import('drizzle-orm/pglite/migrator')
      : await import('drizzle-orm/postgres-js/migrator');
  await migrate(handle.db as never, { migrationsFolder: folder });
}

let database: { handle: DatabaseHandle; drop(): Promise<void> };
let db: DatabaseHandle['db'];
beforeAll(async () => {
  database = await emptyDatabase();
  db = database.handle.db;
  await migrateWith(database.handle, migrationsBefore(MERGE));
});
afterAll(() => database.drop());

const P0 = '2026-10-01T00:00:00.000Z';
const P1 = '2026-11-01T00:00:00.000Z';

async function project(name: string): Promise<string> {
  const [row] = rowsOf<{ id: string }>(
    await db.execute(sql`insert into projects (name) values (${name}) returning id`),
  );
  if (!row) throw new Error('no project');
  return row.id;
}

async function limit(l: {
  projectId: string;
  scope: 'project' | 'agent';
  scopeId?: string;
  period: 'day' | 'month';
  amount: number;
  createdAt: string;
}): Promise<string> {
  const [row] = rowsOf<{ id: string }>(
    await db.execute(sql`
      insert into budget_limits (project_id, scope, scope_id, period, amount, created_at)
      values (${l.projectId}, ${l.scope}, ${l.scopeId ?? null}, ${l.period}, ${l.amount},
              ${l.createdAt})
      returning id`),
  );
  if (!row) throw new Error('no limit');
  return row.id;
}

async function usage(limitId: string, periodStart: string, spent: number, reserved: number) {
  await db.execute(sql`
    insert into budget_usage (limit_id, period_start, spent, reserved)
    values (${limitId}, ${periodStart}, ${spent}, ${reserved})`);
}

async function alert(limitId: string, periodStart: string, threshold: number, spent: number) {
  await db.execute(sql`
    insert into budget_alerts (limit_id, period_start, threshold, spent)
    values (${limitId}, ${periodStart}, ${threshold}, ${spent})`);
}

describe(`migration ${MERGE}`, () => {
  it('merges duplicate limits into the newest, keeping spend and fired alerts, then enforces one', async () => {
    const alpha = await project('Alpha');
    const beta = await project('Beta');
    const agentId = randomUUID();
    const monthly = { projectId: alpha, scope: 'project', period: 'month' } as const;
    const a = await limit({ ...monthly, amount: 1, createdAt: '2026-11-02T00:00:00Z' });
    const b = await limit({ ...monthly, amount: 2, createdAt: '2026-11-03T00:00:00Z' });
    const c = await limit({ ...monthly, amount: 3, createdAt: '2026-11-04T00:00:00Z' });
    const agentDaily = {
      projectId: alpha,
      scope: 'agent',
      scopeId: agentId,
      period: 'day',
    } as const;
    const d = await limit({ ...agentDaily, amount: 4, createdAt: '2026-11-02T00:00:00Z' });
    const e = await limit({ ...agentDaily, amount: 5, createdAt: '2026-11-03T00:00:00Z' });
    // Not duplicates: another period, another project.
    const daily = await limit({ ...monthly, period: 'day', amount: 6, createdAt: P1 });
    const betas = await limit({ ...monthly, projectId: beta, amount: 7, createdAt: P1 });
    await usage(a, P0, 40, 0);
    await usage(a, P1, 50, 10);
    await usage(b, P1, 70, 20);
    await usage(c, P1, 60, 30);
    await usage(d, P1, 9, 1);
    await usage(betas, P1, 11, 0);
    await alert(a, P1, 0.5, 50);
    await alert(b, P1, 0.5, 55);
    await alert(c, P1, 0.9, 60);

    await database.handle.migrate();
    expect(await database.handle.pendingMigrations()).toBe(0);

    const limits = rowsOf<{ id: string; amount: string }>(
      await db.execute(sql`select id, amount::text from budget_limits order by amount`),
    );
    // The newest of each identity wins (the latest setting); the others are untouched.
    expect(limits).toEqual([
      { id: c, amount: '3' },
      { id: e, amount: '5' },
      { id: daily, amount: '6' },
      { id: betas, amount: '7' },
    ]);
    const spend = rowsOf<{ limit_id: string; period_start: string; spent: string; r: string }>(
      await db.execute(sql`
        select u.limit_id, to_char(u.period_start at time zone 'UTC', 'YYYY-MM-DD') as period_start,
               u.spent::text, u.reserved::text as r
        from budget_usage u join budget_limits l on l.id = u.limit_id
        order by l.amount, u.period_start`),
    );
    // Each duplicate counted the same calls: the highest spend, not the sum; the kept
    // limit's own holds stay (calls in flight release them by its id).
    expect(spend).toEqual([
      { limit_id: c, period_start: '2026-10-01', spent: '40', r: '0' },
      { limit_id: c, period_start: '2026-11-01', spent: '70', r: '30' },
      { limit_id: e, period_start: '2026-11-01', spent: '9', r: '0' },
      { limit_id: betas, period_start: '2026-11-01', spent: '11', r: '0' },
    ]);
    const alerts = rowsOf<{ limit_id: string; threshold: number }>(
      await db.execute(sql`select limit_id, threshold from budget_alerts order by threshold`),
    );
    expect(alerts).toEqual([
      { limit_id: c, threshold: 0.5 },
      { limit_id: c, threshold: 0.9 },
    ]);

    // From now on the database refuses a duplicate, a project limit's null scope_id included.
    const duplicate = limit({ ...monthly, amount: 8, createdAt: P1 }).catch((err: unknown) => err);
    expect(isUniqueViolation(await duplicate)).toBe(true);
    const agentDuplicate = limit({ ...agentDaily, amount: 8, createdAt: P1 }).catch(
      (err: unknown) => err,
    );
    expect(isUniqueViolation(await agentDuplicate)).toBe(true);
  });
});
