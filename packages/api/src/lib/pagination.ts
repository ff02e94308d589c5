import { and, asc, desc, eq, gt, lt, or, type SQL } from 'drizzle-orm';
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
  const cmp = opts.direction === 'asc' ? gt : lt;
  const order = opts.direction === 'asc' ? asc : desc;
  let where: SQL | undefined;
  if (opts.cursor) {
    const key = decodeCursor(opts.cursor);
    where = or(cmp(opts.at, key.at), and(eq(opts.at, key.at), cmp(opts.id, key.id)));
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
