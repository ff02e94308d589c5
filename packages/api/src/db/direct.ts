import { type Column, fillPlaceholders } from 'drizzle-orm';
import type { Db } from './client';

/** A statement run with named placeholder values, answering decoded rows. */
export interface DirectQuery<R> {
  execute(values: Record<string, unknown>): Promise<R[]>;
}

type Unsafe = (
  text: string,
  params: unknown[],
) => PromiseLike<unknown> & {
  values(): PromiseLike<unknown[][]>;
};

/**
 * A select that drizzle builds once (its SQL and placeholders), sent straight through
 * postgres.js on every call, for the few statements every request makes (the session
 * checks). drizzle wraps each query it runs in three tracer spans and maps the row through
 * its selection, about 10 µs of a 130 µs call on the CI machine; here the row comes back as
 * an array and each value goes through the column's own decoder, exactly as drizzle decodes
 * it. The bounded pool still applies (and prepares the statement unless
 * DATABASE_PREPARED_STATEMENTS is off). On PGlite, whose client is another, drizzle runs it.
 *
 * `columns` are the selection's columns in order (the SQL selects them in that order).
 */
export function directSelect<R>(
  db: Db,
  query: { toSQL(): { sql: string; params: unknown[] }; prepare(name: string): unknown },
  name: string,
  columns: Column[],
  shape: (values: unknown[]) => R,
): DirectQuery<R> {
  const client = (db as unknown as { $client?: { unsafe?: Unsafe } }).$client;
  const unsafe = typeof client?.unsafe === 'function' ? client.unsafe : null;
  const decode = (raw: unknown[]) =>
    shape(columns.map((c, i) => (raw[i] == null ? null : c.mapFromDriverValue(raw[i]))));
  if (!unsafe) {
    const prepared = query.prepare(name) as {
      execute(values: Record<string, unknown>): Promise<Record<string, unknown>[]>;
    };
    // Rows keyed as selected: their values in selection order are the same columns.
    return {
      execute: async (values) =>
        (await prepared.execute(values)).map((row) => shape(Object.values(row))),
    };
  }
  const { sql: text, params } = query.toSQL();
  return {
    async execute(values) {
      const rows = await unsafe(text, fillPlaceholders(params, values)).values();
      return rows.map(decode);
    },
  };
}
