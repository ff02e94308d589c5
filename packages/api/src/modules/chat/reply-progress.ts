import { and, eq } from 'drizzle-orm';
import type { Db } from '../../db/client';
import type { Logger } from '../../lib/logger';
import { messages } from './chat.table';

/**
 * How far a streaming reply's stored text may trail what subscribers were sent, so a process
 * killed mid-reply loses at most this much of it. Each flush
 * rewrites the whole text, so a shorter interval costs more writes of a growing row.
 */
export const PARTIAL_FLUSH_MS = 500;
/** With no new text the row is still touched this often: the sweeper's sign of life. */
const HEARTBEAT_MS = 5_000;

export interface ReplyProgress {
  /** Text now in the event log (subscribers may have it); stored by the next flush. */
  published(text: string): void;
  /** Stops flushing and waits for the write in flight, so a final write after it wins. */
  stop(): Promise<void>;
}

/**
 * Keeps a streaming reply's row current: its text (only what was published, so the stored
 * partial is always a prefix of what subscribers saw) and its heartbeat. One write at a time
 * per reply, and only to a row still 'streaming': a flush never touches a finished reply.
 */
export function trackReplyProgress(opts: {
  db: Db;
  replyId: string;
  log: Logger;
  flushMs?: number;
  heartbeatMs?: number;
}): ReplyProgress {
  const heartbeatMs = opts.heartbeatMs ?? HEARTBEAT_MS;
  let sent = '';
  let storedLength = 0;
  // The row was inserted with a fresh heartbeat.
  let lastWriteAt = Date.now();
  let writing: Promise<void> | null = null;

  const write = () => {
    const content = sent;
    lastWriteAt = Date.now();
    writing = opts.db
      .update(messages)
      .set({ content, heartbeatAt: new Date() })
      .where(and(eq(messages.id, opts.replyId), eq(messages.status, 'streaming')))
      .then(
        () => {
          storedLength = content.length;
        },
        (err: unknown) =>
          opts.log.warn({ err, replyId: opts.replyId }, 'storing reply progress failed'),
      )
      .finally(() => {
        writing = null;
      });
  };

  const timer = setInterval(() => {
    if (writing) return;
    if (sent.length !== storedLength || Date.now() - lastWriteAt >= heartbeatMs) write();
  }, opts.flushMs ?? PARTIAL_FLUSH_MS);
  timer.unref();

  return {
    published(text) {
      sent += text;
    },
    async stop() {
      clearInterval(timer);
      await writing;
    },
  };
}
