import { sql } from 'drizzle-orm';
import { check, index, pgTable, primaryKey, text, uuid } from 'drizzle-orm/pg-core';
import { micro, ts } from '../../db/columns';
import { budgetLimits } from '../budgets/budgets.table';
import { projects } from '../projects/projects.table';

/**
 * Budget and balance an instance took in advance for one project's model calls (leases.ts):
 * what it holds here is counted in the rows' `reserved`, so other instances cannot spend it.
 * The instance admits calls against it in memory and settles each call's cost out of it.
 * Returned when the project goes idle, when its budget changes, on shutdown, and by the
 * sweeper once `heartbeat_at` is stale (the instance died).
 */
export const gatewayLeases = pgTable(
  'gateway_leases',
  {
    id: uuid('id').primaryKey(),
    projectId: uuid('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    // Which instance holds it (host:pid:random), for operators; staleness goes by heartbeat.
    owner: text('owner').notNull(),
    balanceHeld: micro('balance_held').notNull().default(sql`0`),
    heartbeatAt: ts('heartbeat_at').notNull().defaultNow(),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [
    index('gateway_leases_heartbeat_idx').on(t.heartbeatAt),
    check('gateway_leases_balance_nonnegative', sql`${t.balanceHeld} >= 0`),
  ],
);

/** What a lease holds on each budget period row. */
export const gatewayLeaseHolds = pgTable(
  'gateway_lease_holds',
  {
    leaseId: uuid('lease_id')
      .notNull()
      .references(() => gatewayLeases.id, { onDelete: 'cascade' }),
    limitId: uuid('limit_id')
      .notNull()
      .references(() => budgetLimits.id, { onDelete: 'cascade' }),
    periodStart: ts('period_start').notNull(),
    amount: micro('amount').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.leaseId, t.limitId, t.periodStart] }),
    check('gateway_lease_holds_nonnegative', sql`${t.amount} >= 0`),
  ],
);
