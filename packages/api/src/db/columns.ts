import { bigint, timestamp } from 'drizzle-orm/pg-core';

/** Timestamps with milliseconds, so keyset cursors round-trip exactly. */
export const ts = (name: string) => timestamp(name, { withTimezone: true, precision: 3 });

/** Money in micro-USDC, as bigint end to end. */
export const micro = (name: string) => bigint(name, { mode: 'bigint' });
