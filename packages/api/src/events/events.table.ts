import {
  bigint,
  bigserial,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
} from 'drizzle-orm/pg-core';

/**
 * The durable event log: every event a subscription can deliver is stored here, with a
 * monotonically increasing id, before it is published.
 */
export const events = pgTable(
  'events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    topic: text('topic').notNull(),
    type: text('type').notNull(),
    payload: jsonb('payload').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [
    index('events_topic_id_idx').on(t.topic, t.id),
    index('events_created_at_idx').on(t.createdAt),
  ],
);

/** One row: ids at or below `prunedThrough` may have been deleted by retention. */
export const eventRetention = pgTable('event_retention', {
  id: integer('id').primaryKey().default(1),
  prunedThrough: bigint('pruned_through', { mode: 'number' }).notNull().default(0),
});
