import { index, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { ts } from '../../db/columns';
import { projectRole, projects } from '../projects/projects.table';
import { users } from '../users/users.table';

/**
 * Project API keys: machine credentials for internal tools. The secret is shown once and
 * stored only as its SHA-256 (a 256-bit random secret needs no slow hash); `prefix` is the
 * non-secret start of it, kept so people can tell their keys apart.
 */
export const apiKeys = pgTable(
  'api_keys',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    projectId: uuid('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    role: projectRole('role').notNull(),
    prefix: text('prefix').notNull(),
    secretHash: text('secret_hash').notNull().unique(),
    // A key acts for its creator: it dies with the account (and works only while the creator
    // is still a member of the project).
    createdBy: uuid('created_by')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: ts('created_at').notNull().defaultNow(),
    lastUsedAt: ts('last_used_at'),
    expiresAt: ts('expires_at'),
    revokedAt: ts('revoked_at'),
    revokedBy: uuid('revoked_by'),
  },
  (t) => [index('api_keys_project_idx').on(t.projectId, t.createdAt)],
);

export type ApiKeyRow = typeof apiKeys.$inferSelect;
