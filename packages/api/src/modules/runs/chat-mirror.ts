import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../../db/client';
import type { EventBus } from '../../events/bus';
import {
  type ChatEvent,
  conversationTopic,
  type ReplyErrorCode,
  toMessage,
} from '../chat/chat.dto';
import { messages } from '../chat/chat.table';
import type { RunEvent } from './runs.dto';
import { runs } from './runs.table';

/**
 * A conversation with an agent answers each message with a run of the agent. The run's events
 * are mirrored, in the transaction that publishes them, onto the conversation: text as
 * reply.delta (and into the reply's row, so a reader who reloads sees it), steps as
 * reply.progress, and the run's end as the reply's (reply.completed with the final answer,
 * reply.failed). Every path that publishes a run event goes through publishRunEvents
 * (run-store.ts), so a run ended by a worker, a cancel, a sweeper or an expired approval
 * ends its reply the same way.
 */

export interface ChatLink {
  conversationId: string;
  replyId: string;
}

/** Runs seen in this process → their reply, or null; a run's link never changes. */
const links = new Map<string, ChatLink | null>();
const MAX_LINKS = 10_000;

function remember(runId: string, link: ChatLink | null) {
  if (links.size >= MAX_LINKS) {
    // The oldest entries first (a Map iterates in insertion order).
    for (const key of [...links.keys()].slice(0, MAX_LINKS / 10)) links.delete(key);
  }
  links.set(runId, link);
}

/** Tells the cache what a claimed run's row says, saving the lookup. */
export function knowChatLink(run: {
  id: string;
  conversationId: string | null;
  replyId: string | null;
}) {
  remember(
    run.id,
    run.conversationId && run.replyId
      ? { conversationId: run.conversationId, replyId: run.replyId }
      : null,
  );
}

export async function chatLinkOf(db: Db, runId: string): Promise<ChatLink | null> {
  const known = links.get(runId);
  if (known !== undefined) return known;
  const [row] = await db
    .select({ conversationId: runs.conversationId, replyId: runs.replyId })
    .from(runs)
    .where(eq(runs.id, runId));
  const link =
    row?.conversationId && row.replyId
      ? { conversationId: row.conversationId, replyId: row.replyId }
      : null;
  remember(runId, link);
  return link;
}

const ENDS = new Set<RunEvent['type']>(['run.completed', 'run.failed', 'run.cancelled']);

/** The run's events as the reply's, in `tx`, in order. */
export async function mirrorToChat(
  tx: Db,
  bus: EventBus,
  link: ChatLink,
  runId: string,
  list: readonly RunEvent[],
): Promise<void> {
  const { replyId, conversationId } = link;
  const text = list.flatMap((e) => (e.type === 'text.delta' ? [e.text] : [])).join('');
  // The reply's row takes the streamed text; none left streaming (deleted with its
  // conversation, or ended) means nothing more goes to the conversation.
  const [live] = await tx
    .update(messages)
    .set({ content: sql`${messages.content} || ${text}` })
    .where(and(eq(messages.id, replyId), eq(messages.status, 'streaming')))
    .returning({ id: messages.id });
  if (!live) return;
  const out: ChatEvent[] = [];
  for (const e of list) {
    if (e.type === 'text.delta') out.push({ type: 'reply.delta', replyId, text: e.text });
    else if (e.type === 'run.started' || ENDS.has(e.type)) continue;
    else out.push({ type: 'reply.progress', replyId, runId, event: e });
  }
  const end = list.find((e) => ENDS.has(e.type));
  if (end) out.push(await endReply(tx, runId, replyId, end));
  if (out.length === 0) return;
  await bus.publishMany({
    topic: conversationTopic(conversationId),
    events: out.map(({ type, ...payload }) => ({ type, payload })),
    db: tx,
  });
}

/** The reply's final state from the run's (whose row this transaction has just written). */
async function endReply(tx: Db, runId: string, replyId: string, end: RunEvent): Promise<ChatEvent> {
  const [run] = await tx
    .select({ inputTokens: runs.inputTokens, outputTokens: runs.outputTokens })
    .from(runs)
    .where(eq(runs.id, runId));
  const usage = { inputTokens: run?.inputTokens ?? 0, outputTokens: run?.outputTokens ?? 0 };
  const finished = { completedAt: new Date(), heartbeatAt: null };
  const where = and(eq(messages.id, replyId), eq(messages.status, 'streaming'));
  if (end.type === 'run.completed') {
    const [row] = await tx
      .update(messages)
      .set({ ...finished, content: answerText(end.output), status: 'complete', ...usage })
      .where(where)
      .returning();
    if (!row) throw new Error('the reply stopped streaming during its own transaction');
    return { type: 'reply.completed', message: toMessage(row), usage };
  }
  const cancelled = end.type === 'run.cancelled';
  const appCode = (
    cancelled ? 'reply.cancelled' : end.type === 'run.failed' ? end.appCode : 'reply.failed'
  ) as ReplyErrorCode;
  const message = cancelled
    ? 'The reply was cancelled'
    : end.type === 'run.failed'
      ? end.message
      : 'The reply failed';
  await tx
    .update(messages)
    .set({ ...finished, status: cancelled ? 'cancelled' : 'failed', errorCode: appCode, ...usage })
    .where(where);
  return { type: 'reply.failed', replyId, appCode, message };
}

/** The agent's final answer as a chat message: text as is, structured output as JSON. */
function answerText(output: unknown): string {
  if (typeof output === 'string') return output;
  if (output === undefined) return '';
  return `\`\`\`json\n${JSON.stringify(output, null, 2)}\n\`\`\``;
}
