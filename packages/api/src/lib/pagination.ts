import { asc, desc, type SQL, sql } from 'drizzle-orm';
import type { PgColumn } from 'drizzle-orm/pg-core';
import { z } from 'zod';
import { AppError } from './errors';
import { instantInput } from './input';

export const listInput = z.object({
  cursor: z.string().max(200).optional(),
  limit: z.number().int().min(1).max(100).default(20),
});

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

interface CursorKey {
  at: Date;
  id: string;
}

// A cursor is client-held text: its date is bounded like any other date input.
const cursorShape = z.tuple([instantInput, z.uuid()]);

export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify([key.at.toISOString(), key.id])).toString('base64url');
}

export function decodeCursor(cursor: string): CursorKey {
  try {
    const [at, id] = cursorShape.parse(JSON.parse(Buffer.from(cursor, 'base64url').toString()));
    return { at, id };
  } catch {
    throw new AppError('pagination.invalid_cursor', 'The cursor is not valid for this list');
  }
}

/**
 * Keyset pagination over (timestamp, id): stable under inserts, no OFFSET scans.
 * Returns the WHERE fragment for the page after `cursor` and the ORDER BY to use.
 */
export function keyset(opts: {
  at: PgColumn;
  id: PgColumn;
  cursor: string | undefined;
  direction: 'asc' | 'desc';
}): { where: SQL | undefined; orderBy: SQL[] } {
  const order = opts.direction === 'asc' ? asc : desc;
  let where: SQL | undefined;
  if (opts.cursor) {
    const key = decodeCursor(opts.cursor);
    // A row comparison, not `at < x or (at = x and id < y)`: PostgreSQL turns it into the
    // bounds of an index scan on (…, at, id), so a page deep in a list reads its own rows
    // only (the OR form filters every row before the cursor). Both columns are NOT NULL, where
    // the two forms agree. The date goes in as text: a Date interpolated into raw SQL skips
    // drizzle's mapping.
    const op = opts.direction === 'asc' ? sql.raw('>') : sql.raw('<');
    where = sql`(${opts.at}, ${opts.id}) ${op} (${key.at.toISOString()}::timestamptz, ${key.id}::uuid)`;
  }
  return { where, orderBy: [order(opts.at), order(opts.id)] };
}

/** Fetch `limit + 1` rows, then call this: it trims the extra row and makes the cursor. */
export function toPage<R, T>(
  rows: R[],
  limit: number,
  key: (r: R) => CursorKey,
  map: (r: R) => T,
): Page<T> {
  const more = rows.length > limit;
  const pageRows = more ? rows.slice(0, limit) : rows;
  const last = pageRows[pageRows.length - 1];
  return {
    items: pageRows.map(map),
    nextCursor: more && last !== undefined ? encodeCursor(key(last)) : null,
  };
}
