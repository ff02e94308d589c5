import { sql } from 'drizzle-orm';
import { check, index, jsonb, pgEnum, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { micro, ts } from '../../db/columns';
import { projects } from '../projects/projects.table';
import { users } from '../users/users.table';

/** Prepaid balance per project, in micro-USDC; changed only together with a ledger entry. */
export const projectBalances = pgTable(
  'project_balances',
  {
    projectId: uuid('project_id')
      .primaryKey()
      .references(() => projects.id, { onDelete: 'cascade' }),
    balance: micro('balance').notNull().default(sql`0`),
    // Held by calls in flight: available = balance - reserved.
    reserved: micro('reserved').notNull().default(sql`0`),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    // The backstop: whatever the code does, money cannot go below zero or be over-reserved.
    check('project_balances_balance_nonnegative', sql`${t.balance} >= 0`),
    check('project_balances_reserved_nonnegative', sql`${t.reserved} >= 0`),
    check('project_balances_reserved_covered', sql`${t.reserved} <= ${t.balance}`),
  ],
);

export const ledgerKind = pgEnum('ledger_kind', [
  'deposit',
  'credit',
  'charge',
  'refund',
  'reversal',
]);

/**
 * Every change of a balance. `amount` is signed micro-USDC; the sum of a project's entries
 * always equals its balance. `reference` is unique, so replaying an operation cannot apply
 * it twice.
 */
export const ledgerEntries = pgTable(
  'ledger_entries',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    projectId: uuid('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    kind: ledgerKind('kind').notNull(),
    amount: micro('amount').notNull(),
    balanceAfter: micro('balance_after').notNull(),
    reference: text('reference').notNull().unique(),
    reason: text('reason'),
    actorId: uuid('actor_id').references(() => users.id, { onDelete: 'set null' }),
    metadata: jsonb('metadata').$type<Record<string, unknown>>().notNull().default({}),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [index('ledger_entries_project_idx').on(t.projectId, t.createdAt, t.id)],
);
