import { index, integer, jsonb, pgEnum, pgTable, text, unique, uuid } from 'drizzle-orm/pg-core';
import { ts } from '../../db/columns';
import { projects } from '../projects/projects.table';

export const agentStatus = pgEnum('agent_status', ['active', 'inactive']);

export const agents = pgTable(
  'agents',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    projectId: uuid('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    description: text('description'),
    instructions: text('instructions').notNull(),
    model: text('model').notNull(),
    tools: jsonb('tools').$type<string[]>().notNull().default([]),
    // Of `tools`, those a person must approve before each call (runs pause for it).
    requiresApproval: jsonb('requires_approval').$type<string[]>().notNull().default([]),
    handoffs: jsonb('handoffs').$type<string[]>().notNull().default([]),
    outputSchema: jsonb('output_schema').$type<Record<string, unknown> | null>(),
    maxSteps: integer('max_steps').notNull().default(10),
    status: agentStatus('status').notNull().default('active'),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    unique('agents_project_name').on(t.projectId, t.name),
    index('agents_project_idx').on(t.projectId),
  ],
);

export type AgentRow = typeof agents.$inferSelect;
