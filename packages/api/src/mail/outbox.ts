import { desc, eq } from 'drizzle-orm';
import type { Db } from '../db/client';
import type { Logger } from '../lib/logger';
import type { MailTransport } from './mail';
import { mailOutbox } from './mail.table';

/**
 * Development transport: the message is stored, not sent. The log line names recipient and
 * subject only: bodies carry secrets such as reset links, and logs travel further than the
 * database. Read the body from the table (README: "Mail").
 */
export function outboxTransport(deps: { db: Db; log: Logger }): MailTransport {
  return {
    async send(msg) {
      const [row] = await deps.db
        .insert(mailOutbox)
        .values({ to: msg.to, subject: msg.subject, text: msg.text, html: msg.html ?? null })
        .returning({ id: mailOutbox.id });
      deps.log.info(
        { mailId: row?.id, to: msg.to, subject: msg.subject },
        'mail stored in the mail_outbox table (SMTP_URL is unset)',
      );
    },
    async close() {},
  };
}

/** The newest messages the outbox kept, newest first (`pnpm mail:outbox`). */
export function latestOutboxMail(opts: { db: Db; limit: number; to?: string | undefined }) {
  return opts.db
    .select()
    .from(mailOutbox)
    .where(opts.to ? eq(mailOutbox.to, opts.to) : undefined)
    .orderBy(desc(mailOutbox.createdAt), desc(mailOutbox.id))
    .limit(opts.limit);
}
