import { index, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';

/**
 * Mail the outbox transport kept instead of sending (no SMTP_URL: development, tests).
 * Rows hold the whole message, reset links included, so an operator can read them; with
 * SMTP configured nothing is stored here, so live links never sit in a production database.
 */
export const mailOutbox = pgTable(
  'mail_outbox',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    to: text('to').notNull(),
    subject: text('subject').notNull(),
    text: text('text').notNull(),
    html: text('html'),
    createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [index('mail_outbox_to_idx').on(t.to, t.createdAt)],
);

export type MailOutboxRow = typeof mailOutbox.$inferSelect;
