import { and, eq, isNull, lt, or, sql } from 'drizzle-orm';
import type { Usage } from '../../ai/provider';
import type { Db } from '../../db/client';
import type { EventBus } from '../../events/bus';
import { runs } from '../runs/runs.table';
import { type ChatEvent, conversationTopic, type ReplyErrorCode, toMessage } from './chat.dto';
import { type Citation, type MessageRow, messages } from './chat.table';

/**
 * The reply worker's writes to a reply's row. Each applies only to a reply still
 * 'streaming': the first outcome stored (here, or by a sweep in any instance) wins.
 */

/** Publishes events of a conversation, in order, as one write (in `db` when given). */
export type Publish = (conversationId: string, events: ChatEvent[], db?: Db) => Promise<unknown>;

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

/**
 * Stores the finished reply and publishes its last deltas (`deltas`: text streamed but not
 * yet published) and reply.completed, all in one statement (one round trip, no transaction):
 * subscribers never see the end before the text, and a reply no longer streaming (a sweeper
 * failed it, its conversation was deleted) gets neither. The finished row is `reply` as
 * inserted with this update applied, so nothing is read back.
 */
export async function completeReply(
  db: Db,
  bus: EventBus,
  opts: {
    reply: MessageRow;
    text: string;
    deltas: string;
    usage: Usage;
    citations: Citation[];
  },
) {
  const update = {
    content: opts.text,
    status: 'complete' as const,
    inputTokens: opts.usage.inputTokens,
    outputTokens: opts.usage.outputTokens,
    citations: opts.citations,
    completedAt: new Date(),
    heartbeatAt: null,
  };
  const { id, conversationId } = opts.reply;
  const message = toMessage({ ...opts.reply, ...update });
  const events: ChatEvent[] = [
    ...lastDelta(id, opts.deltas),
    { type: 'reply.completed', message, usage: opts.usage },
  ];
  await bus.publishGuarded({
    topic: conversationTopic(conversationId),
    events: events.map(({ type, ...payload }) => ({ type, payload })),
    guard: db
      .update(messages)
      .set(update)
      // Only a reply still streaming: one a sweeper already failed stays failed.
      .where(and(eq(messages.id, id), eq(messages.status, 'streaming')))
      .returning({ id: messages.id })
      .getSQL(),
  });
}

const lastDelta = (replyId: string, text: string): ChatEvent[] =>
  text ? [{ type: 'reply.delta', replyId, text }] : [];

/**
 * Stores the partial text and the failure, then tells subscribers (the last deltas first);
 * once per reply.
 */
export async function finishFailed(
  db: Db,
  publish: Publish,
  opts: {
    conversationId: string;
    replyId: string;
    text: string | null;
    /** Text streamed but not yet published. */
    deltas?: string;
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
        [
          ...lastDelta(opts.replyId, opts.deltas ?? ''),
          {
            type: 'reply.failed',
            replyId: opts.replyId,
            appCode: opts.appCode,
            message: opts.message,
          },
        ],
        tx,
      );
    }
    return row !== undefined;
  });
}
