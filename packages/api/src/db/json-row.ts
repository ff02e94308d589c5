import { getTableColumns, type InferSelectModel } from 'drizzle-orm';
import type { PgTable } from 'drizzle-orm/pg-core';

/**
 * A row of `table` that the database handed back as JSON (`to_jsonb(row)`, keys the column
 * names), decoded as drizzle decodes a selected row: timestamps to Dates, bigint to bigint
 * (send them as text: a JSON number loses digits past 2^53). JSON columns are taken as they
 * are, never parsed again (a stored JSON string stays a string).
 */
export function rowFromJson<T extends PgTable>(
  table: T,
  json: Record<string, unknown>,
): InferSelectModel<T> {
  const row: Record<string, unknown> = {};
  for (const [key, column] of Object.entries(getTableColumns(table))) {
    const value = json[column.name];
    if (value === undefined) throw new Error(`column ${column.name} missing from the JSON row`);
    row[key] =
      value === null || column.columnType === 'PgJsonb' || column.columnType === 'PgJson'
        ? value
        : column.mapFromDriverValue(value);
  }
  return row as InferSelectModel<T>;
}
