import { and, eq, isNull, lt, or, sql } from 'drizzle-orm';
import type { Usage } from '../../ai/provider';
import type { Db } from '../../db/client';
import { runs } from '../runs/runs.table';
import { type ChatEvent, type ReplyErrorCode, toMessage } from './chat.dto';
import { type Citation, messages } from './chat.table';

/**
 * The reply worker's writes to a reply's row. Each applies only to a reply still
 * 'streaming': the first outcome stored (here, or by a sweep in any instance) wins.
 */

export type Publish = (conversationId: string, event: ChatEvent, db?: Db) => Promise<unknown>;

/**
 * Replies left streaming by a process that died (heartbeat older than `staleMs`), and replies
 * an agent's run wrote (no heartbeat of their own) whose run is gone or ended without ending
 * them (its agent deleted with its runs, say).
 */
export const staleReplies = (db: Db, staleMs: number) =>
  db
    .select({ id: messages.id, conversationId: messages.conversationId })
    .from(messages)
    .where(
      and(
        eq(messages.status, 'streaming'),
        or(
          lt(messages.heartbeatAt, new Date(Date.now() - staleMs)),
          and(
            isNull(messages.heartbeatAt),
            sql`not exists (select 1 from ${runs} r where r.reply_id = ${messages.id}
              and r.status in ('queued', 'running', 'awaiting_approval'))`,
          ),
        ),
      ),
    );

export async function completeReply(
  db: Db,
  publish: Publish,
  opts: {
    conversationId: string;
    replyId: string;
    text: string;
    usage: Usage;
    citations: Citation[];
  },
) {
  const [row] = await db
    .update(messages)
    .set({
      content: opts.text,
      status: 'complete',
      inputTokens: opts.usage.inputTokens,
      outputTokens: opts.usage.outputTokens,
      citations: opts.citations,
      completedAt: new Date(),
      heartbeatAt: null,
    })
    // Only a reply still streaming: one a sweeper already failed stays failed.
    .where(and(eq(messages.id, opts.replyId), eq(messages.status, 'streaming')))
    .returning();
  if (row) {
    await publish(opts.conversationId, {
      type: 'reply.completed',
      message: toMessage(row),
      usage: opts.usage,
    });
  }
}

/** Stores the partial text and the failure, then tells subscribers; once per reply. */
export async function finishFailed(
  db: Db,
  publish: Publish,
  opts: {
    conversationId: string;
    replyId: string;
    text: string | null;
    appCode: ReplyErrorCode;
    message: string;
    cancelled: boolean;
  },
): Promise<boolean> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(messages)
      .set({
        ...(opts.text === null ? {} : { content: opts.text }),
        status: opts.cancelled ? 'cancelled' : 'failed',
        errorCode: opts.appCode,
        completedAt: new Date(),
        heartbeatAt: null,
      })
      .where(and(eq(messages.id, opts.replyId), eq(messages.status, 'streaming')))
      .returning({ id: messages.id });
    if (row) {
      await publish(
        opts.conversationId,
        {
          type: 'reply.failed',
          replyId: opts.replyId,
          appCode: opts.appCode,
          message: opts.message,
        },
        tx,
      );
    }
    return row !== undefined;
  });
}
