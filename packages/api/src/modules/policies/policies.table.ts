import { bigint, integer, jsonb, pgTable, timestamp, uuid } from 'drizzle-orm/pg-core';
import { projects } from '../projects/projects.table';

/** Spend policy of a project; null fields mean "no limit". */
export const policies = pgTable('policies', {
  projectId: uuid('project_id')
    .primaryKey()
    .references(() => projects.id, { onDelete: 'cascade' }),
  allowedModels: jsonb('allowed_models').$type<string[] | null>(),
  maxOutputTokens: integer('max_output_tokens'),
  maxCostPerRequest: bigint('max_cost_per_request', { mode: 'bigint' }),
  // Applied to the project as a whole and, separately, to each member.
  requestsPerMinute: integer('requests_per_minute'),
  tokensPerMinute: integer('tokens_per_minute'),
  // A run's model step that could cost more than this (its worst case) waits for a person's
  // approval first.
  approvalCostThreshold: bigint('approval_cost_threshold', { mode: 'bigint' }),
  updatedAt: timestamp('updated_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
});
