import { randomUUID } from 'node:crypto';
import { and, asc, eq, inArray, ne } from 'drizzle-orm';
import type { ChatTurn } from '../../ai/provider';
import { ModelError } from '../../ai/provider';
import type { ModelRegistry } from '../../ai/registry';
import type { Db } from '../../db/client';
import type { EventBus } from '../../events/bus';
import { type Actor, actorKeyId } from '../../lib/actor';
import { AppError } from '../../lib/errors';
import { type AgentRow, findAgentRow } from '../agents/agents.service';
import { files } from '../files/files.table';
import { runs } from '../runs/runs.table';
import { type ChatEvent, conversationTopic } from './chat.dto';
import {
  type Attachment,
  type ConversationRow,
  conversations,
  type MessageRow,
  messages,
} from './chat.table';
import type { ReplyRunner } from './replies';
import { type PromptRow, promptRows } from './reply-prompt';

/**
 * What every write that starts a reply (send, regenerate, edit) shares: the conversation
 * lock that allows one streaming reply at a time, the model rules, and the reply row.
 */

export function checkModel(models: ModelRegistry, model: string) {
  if (!models.get(model)) {
    throw new AppError('chat.unknown_model', `Unknown model "${model}"; see models.list`);
  }
  try {
    models.provider(model);
  } catch (e) {
    if (e instanceof ModelError) throw new AppError('model.unavailable', e.message);
    throw e;
  }
}

/**
 * Locks the conversation row until the transaction ends, then refuses if a reply streams in
 * it. Every writer that starts a reply or rewrites history takes this lock first, so of two
 * concurrent calls the second waits, sees the first one's streaming reply, and is refused:
 * exactly one reply streams.
 */
export async function lockIdleConversation(tx: Db, conversationId: string) {
  return (await lockIdle(tx, conversationId, false)).conversation;
}

/**
 * `lockIdleConversation`, and the conversation's messages as a reply's prompt reads them,
 * read under the lock in the same round trip (the reply's worker then has no read to make).
 */
export function lockIdleWithHistory(tx: Db, conversationId: string) {
  return lockIdle(tx, conversationId, true);
}

async function lockIdle(tx: Db, conversationId: string, history: boolean) {
  // Sent together, run in this order: the later reads' snapshots are taken once the lock is
  // held.
  const [[conversation], [busy], rows] = await Promise.all([
    tx.select().from(conversations).where(eq(conversations.id, conversationId)).for('update'),
    tx
      .select({ id: messages.id })
      .from(messages)
      .where(and(eq(messages.conversationId, conversationId), eq(messages.status, 'streaming')))
      .limit(1),
    history ? promptRows(tx, conversationId) : null,
  ]);
  if (!conversation) throw new AppError('chat.conversation_not_found', 'Not found');
  if (busy) {
    throw new AppError(
      'chat.reply_in_progress',
      'Wait for the current reply to finish, or cancel it',
    );
  }
  return { conversation, history: rows ?? [] };
}

/** The model a new reply uses: the call's, else the conversation's, else the default. */
export function replyModel(
  models: ModelRegistry,
  conversation: ConversationRow,
  requested: string | undefined,
): string {
  const model = requested ?? conversation.model ?? models.defaultModel;
  checkModel(models, model);
  return model;
}

/**
 * Who writes a new reply: in a conversation with an agent, a run of that agent (with its
 * model; another may not be asked for), else the model a plain reply uses.
 */
export async function replyWriter(
  tx: Db,
  models: ModelRegistry,
  conversation: ConversationRow,
  requested: string | undefined,
): Promise<{ model: string; agent: AgentRow | null }> {
  if (!conversation.agentId) {
    return { model: replyModel(models, conversation, requested), agent: null };
  }
  if (requested !== undefined) {
    throw new AppError(
      'chat.agent_conversation',
      "This conversation talks to an agent: it replies with the agent's model",
    );
  }
  const agent = await findAgentRow(tx, conversation.agentId);
  if (!agent) throw new AppError('agents.not_found', "The conversation's agent is gone");
  if (agent.status !== 'active') {
    throw new AppError('agents.inactive', "The conversation's agent is inactive");
  }
  return { model: agent.model, agent };
}

/**
 * The run that writes a reply of an agent: the conversation so far (finished replies and
 * every question, the new one last) is its transcript. Its events reach the conversation as
 * the reply's (runs/chat-mirror.ts). The caller announces reply.started with its other
 * events (`announceReply`) and kicks a runner once this commits.
 */
export async function insertReplyRun(
  tx: Db,
  opts: {
    conversation: ConversationRow;
    agent: AgentRow;
    replyId: string;
    actor: Actor;
    /** The conversation's messages but the reply, when the caller has them already. */
    history?: Pick<PromptRow, 'role' | 'content' | 'status'>[];
  },
) {
  const { conversation, agent, replyId, actor } = opts;
  const rows =
    opts.history ??
    (await tx
      .select({ role: messages.role, content: messages.content, status: messages.status })
      .from(messages)
      .where(and(eq(messages.conversationId, conversation.id), ne(messages.id, replyId)))
      .orderBy(asc(messages.createdAt), asc(messages.id)));
  const transcript: ChatTurn[] = rows
    .filter((r) => r.role === 'user' || r.status === 'complete')
    .map((r) => ({ role: r.role, content: r.content }));
  const question = rows.findLast((r) => r.role === 'user')?.content ?? '';
  await tx.insert(runs).values({
    projectId: conversation.projectId,
    agentId: agent.id,
    activeAgentId: agent.id,
    input: question,
    createdBy: actor.userId,
    createdByKey: actorKeyId(actor),
    transcript,
    conversationId: conversation.id,
    replyId,
  });
}

/**
 * Publishes, inside `tx`, what a write that starts a reply tells the conversation (the
 * message changes it made, in order) and then reply.started: one write, committed with the
 * reply's row, so the worker has nothing to announce before it streams.
 */
export function announceReply(
  tx: Db,
  bus: EventBus,
  conversationId: string,
  replyId: string,
  before: ChatEvent[],
) {
  const list: ChatEvent[] = [...before, { type: 'reply.started', replyId }];
  return bus.publishMany({
    topic: conversationTopic(conversationId),
    events: list.map(({ type, ...payload }) => ({ type, payload })),
    db: tx,
  });
}

/**
 * Inserts the empty streaming reply to the question created at `after`, a millisecond later
 * at least, so "oldest first" always puts the reply after its question. Computed in JS, not
 * in raw SQL: a Date interpolated into sql`...` skips drizzle's column mapping, and
 * postgres.js (whose date serialiser drizzle turns off) throws on it. Timestamps have
 * millisecond precision, so +1 ms is exact. The whole row is written as built here (the id
 * too), so nothing waits for the INSERT's answer, and the reply's worker knows it without
 * reading it back.
 */
export async function insertReply(
  tx: Db,
  conversationId: string,
  model: string,
  after: Date,
  /** A reply a run writes has no heartbeat of its own: the run's covers it. */
  byRun = false,
  id: string = randomUUID(),
): Promise<MessageRow> {
  const createdAt = new Date(Math.max(Date.now(), after.getTime() + 1));
  const row: MessageRow = {
    id,
    conversationId,
    role: 'assistant',
    content: '',
    authorId: null,
    model,
    status: 'streaming',
    inputTokens: null,
    outputTokens: null,
    citations: [],
    attachments: [],
    errorCode: null,
    createdAt,
    completedAt: null,
    editedAt: null,
    heartbeatAt: byRun ? null : new Date(),
  };
  await Promise.all([
    tx.insert(messages).values(row),
    tx
      .update(conversations)
      .set({ updatedAt: new Date() })
      .where(eq(conversations.id, conversationId)),
  ]);
  return row;
}

/** Hands a committed streaming reply row to the worker (or its run to a runner). */
export function startReply(opts: {
  replies: ReplyRunner;
  conversation: ConversationRow;
  reply: MessageRow;
  /** The conversation's messages, the reply's question last, when they were read already. */
  history?: PromptRow[] | undefined;
  model: string;
  agent: AgentRow | null;
  actor: Actor;
}) {
  if (opts.agent) {
    opts.replies.startRun(opts.conversation.projectId);
    return;
  }
  opts.replies.start({
    conversation: opts.conversation,
    reply: opts.reply,
    history: opts.history,
    model: opts.model,
    userId: opts.actor.userId,
    keyId: actorKeyId(opts.actor),
  });
}

/**
 * The files to attach, in the order given (repeats dropped), each of them in the
 * conversation's project. One outside it answers files.not_found exactly as one that does
 * not exist, so ids from other projects reveal nothing.
 */
export async function resolveAttachments(
  tx: Db,
  projectId: string,
  fileIds: readonly string[],
): Promise<Attachment[]> {
  const wanted = [...new Set(fileIds)];
  if (wanted.length === 0) return [];
  const rows = await tx
    .select({ id: files.id, name: files.name })
    .from(files)
    .where(and(eq(files.projectId, projectId), inArray(files.id, wanted)));
  const byId = new Map(rows.map((r) => [r.id, r.name]));
  return wanted.map((fileId) => {
    const name = byId.get(fileId);
    if (name === undefined) throw new AppError('files.not_found', `No such file: ${fileId}`);
    return { fileId, name };
  });
}
