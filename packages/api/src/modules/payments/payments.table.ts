import { sql } from 'drizzle-orm';
import {
  bigint,
  check,
  index,
  integer,
  pgEnum,
  pgTable,
  primaryKey,
  text,
  unique,
  uuid,
} from 'drizzle-orm/pg-core';
import { ts } from '../../db/columns';
import { projects } from '../projects/projects.table';
import { users } from '../users/users.table';
import { wallets } from './wallets.table';

/**
 * pending: claimed for a project, waiting for confirmations. credited: on the balance.
 * unmatched: nobody's yet (unknown sender, or nobody claimed it); the sender's owner may
 * claim it, an admin may assign it. reversed: its block left the canonical chain (a credit
 * was undone by a reversal entry); seen again in a canonical block, it comes back.
 */
export const paymentStatus = pgEnum('payment_status', [
  'pending',
  'credited',
  'unmatched',
  'reversed',
]);
export type PaymentStatus = (typeof paymentStatus.enumValues)[number];

/** One USDC Transfer log to the deposit address. Amounts are micro-USDC (6 decimals). */
export const payments = pgTable(
  'payments',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    chainId: integer('chain_id').notNull(),
    // Lower-case hex.
    txHash: text('tx_hash').notNull(),
    logIndex: integer('log_index').notNull(),
    blockNumber: bigint('block_number', { mode: 'number' }).notNull(),
    blockHash: text('block_hash').notNull(),
    token: text('token').notNull(),
    fromAddress: text('from_address').notNull(),
    toAddress: text('to_address').notNull(),
    amount: bigint('amount', { mode: 'bigint' }).notNull(),
    status: paymentStatus('status').notNull(),
    projectId: uuid('project_id').references(() => projects.id, { onDelete: 'set null' }),
    walletId: uuid('wallet_id').references(() => wallets.id, { onDelete: 'set null' }),
    /** Who claimed it (confirmDeposit) or assigned it (an admin); null: the watcher did. */
    claimedBy: uuid('claimed_by').references(() => users.id, { onDelete: 'set null' }),
    /** Credits undone by reorgs so far; part of the ledger reference of the next credit. */
    reorgs: integer('reorgs').notNull().default(0),
    creditedAt: ts('credited_at'),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    // A log is one payment, whoever reports it and however often (replays, races).
    unique('payments_chain_tx_log_unique').on(t.chainId, t.txHash, t.logIndex),
    index('payments_project_idx').on(t.projectId, t.createdAt, t.id),
    index('payments_status_block_idx').on(t.chainId, t.status, t.blockNumber),
    // payments.unmatched pages (pnpm db:explain: a seq scan at 30k payments without it).
    index('payments_status_created_idx').on(t.status, t.createdAt, t.id),
    check('payments_amount_positive', sql`${t.amount} > 0`),
  ],
);

export type PaymentRow = typeof payments.$inferSelect;

/** How far the watcher has scanned, per chain, token and deposit address. */
export const depositCursors = pgTable(
  'deposit_cursors',
  {
    chainId: integer('chain_id').notNull(),
    token: text('token').notNull(),
    depositAddress: text('deposit_address').notNull(),
    /** The last block scanned, and its hash (a different hash later means a reorg). */
    blockNumber: bigint('block_number', { mode: 'number' }).notNull(),
    blockHash: text('block_hash').notNull(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.chainId, t.token, t.depositAddress] })],
);
