import { sql } from 'drizzle-orm';
import {
  check,
  index,
  jsonb,
  pgEnum,
  pgTable,
  primaryKey,
  real,
  unique,
  uuid,
} from 'drizzle-orm/pg-core';
import { micro, ts } from '../../db/columns';
import { projects } from '../projects/projects.table';

export const budgetScope = pgEnum('budget_scope', ['project', 'agent', 'member', 'key']);
export const budgetPeriod = pgEnum('budget_period', ['day', 'week', 'month', 'total']);

export const budgetLimits = pgTable(
  'budget_limits',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    projectId: uuid('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    scope: budgetScope('scope').notNull(),
    // The agent, member or API key the limit applies to; null for scope 'project'.
    scopeId: uuid('scope_id'),
    period: budgetPeriod('period').notNull(),
    amount: micro('amount').notNull(),
    alertAt: jsonb('alert_at').$type<number[]>().notNull().default([]),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [
    index('budget_limits_project_idx').on(t.projectId),
    // One limit per identity, so concurrent sets upsert one row. NULLS
    // NOT DISTINCT: a project limit's scope_id is null, and nulls must collide too.
    unique('budget_limits_identity_unique')
      .on(t.projectId, t.scope, t.scopeId, t.period)
      .nullsNotDistinct(),
    check('budget_limits_amount_positive', sql`${t.amount} > 0`),
    check('budget_limits_scope_id', sql`(${t.scope} = 'project') = (${t.scopeId} is null)`),
  ],
);

/**
 * Spend and holds of one limit in one period (UTC calendar; 'total' uses the epoch). The
 * reservation is one conditional UPDATE: spent + reserved + hold <= amount, or no row.
 */
export const budgetUsage = pgTable(
  'budget_usage',
  {
    limitId: uuid('limit_id')
      .notNull()
      .references(() => budgetLimits.id, { onDelete: 'cascade' }),
    periodStart: ts('period_start').notNull(),
    spent: micro('spent').notNull().default(sql`0`),
    reserved: micro('reserved').notNull().default(sql`0`),
  },
  (t) => [
    primaryKey({ columns: [t.limitId, t.periodStart] }),
    check('budget_usage_nonnegative', sql`${t.spent} >= 0 and ${t.reserved} >= 0`),
  ],
);

/** One row per threshold crossed per period: the alert fires once. */
export const budgetAlerts = pgTable(
  'budget_alerts',
  {
    limitId: uuid('limit_id')
      .notNull()
      .references(() => budgetLimits.id, { onDelete: 'cascade' }),
    periodStart: ts('period_start').notNull(),
    threshold: real('threshold').notNull(),
    spent: micro('spent').notNull(),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.limitId, t.periodStart, t.threshold] })],
);

export type BudgetLimitRow = typeof budgetLimits.$inferSelect;
