import { bigserial, index, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import type { Json } from './audit.hash';

/**
 * The audit log: append-only (a trigger refuses UPDATE, DELETE and TRUNCATE) and
 * tamper-evident (each row hashes its content and the previous row's hash).
 * `actor_id`, `actor_key_id` and `project_id` carry no foreign keys: the history outlives users and projects.
 */
export const auditEvents = pgTable(
  'audit_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    // Set by the app (not defaultNow) so the hashed value is exactly the stored one.
    at: timestamp('at', { withTimezone: true, precision: 3 }).notNull(),
    actorId: uuid('actor_id'),
    actorKeyId: uuid('actor_key_id'),
    action: text('action').notNull(),
    projectId: uuid('project_id'),
    target: text('target'),
    ip: text('ip'),
    metadata: jsonb('metadata').$type<Record<string, Json>>().notNull(),
    prevHash: text('prev_hash').notNull(),
    hash: text('hash').notNull(),
  },
  (t) => [
    index('audit_events_project_idx').on(t.projectId, t.id),
    index('audit_events_actor_idx').on(t.actorId, t.id),
    index('audit_events_action_idx').on(t.action, t.id),
    index('audit_events_at_idx').on(t.at),
  ],
);

export type AuditEventRow = typeof auditEvents.$inferSelect;
