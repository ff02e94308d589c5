import type { SQL } from 'drizzle-orm';
import type { Db } from '../db/client';

export { sql } from 'drizzle-orm';

/**
 * Runs a raw query on either engine and returns its rows, for tests that inspect what the app
 * stored. postgres.js answers with the rows themselves, PGlite with `{ rows }`.
 */
export async function queryRows<T>(db: Db, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown;
  if (Array.isArray(result)) return result as T[];
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}
