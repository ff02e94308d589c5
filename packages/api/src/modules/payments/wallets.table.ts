import { sql } from 'drizzle-orm';
import { check, index, integer, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { ts } from '../../db/columns';
import { projects } from '../projects/projects.table';
import { users } from '../users/users.table';

/** A wallet proven by a SIWE signature. An address belongs to one user at a time. */
export const wallets = pgTable(
  'wallets',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    // Checksummed (EIP-55), so one address has one spelling and the unique constraint holds.
    address: text('address').notNull().unique(),
    /** The chain the ownership proof was signed for. */
    chainId: integer('chain_id').notNull(),
    /** Where deposits from this wallet go when nobody claims them with confirmDeposit. */
    projectId: uuid('project_id').references(() => projects.id, { onDelete: 'set null' }),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [
    index('wallets_user_idx').on(t.userId, t.createdAt),
    check('wallets_address_format', sql`${t.address} ~ '^0x[0-9a-fA-F]{40}$'`),
  ],
);

/**
 * Outstanding SIWE challenges: one-time nonces bound to a user, an address, this app's
 * domain and the chain, with an expiry. Deleted when used, so a nonce works once.
 */
export const walletChallenges = pgTable(
  'wallet_challenges',
  {
    nonce: text('nonce').primaryKey(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    address: text('address').notNull(),
    domain: text('domain').notNull(),
    uri: text('uri').notNull(),
    chainId: integer('chain_id').notNull(),
    issuedAt: ts('issued_at').notNull(),
    expiresAt: ts('expires_at').notNull(),
  },
  (t) => [index('wallet_challenges_expires_idx').on(t.expiresAt)],
);

export type WalletRow = typeof wallets.$inferSelect;
