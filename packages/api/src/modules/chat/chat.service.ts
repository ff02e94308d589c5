import { randomUUID } from 'node:crypto';
import { and, desc, eq, gt, or } from 'drizzle-orm';
import type { ModelRegistry } from '../../ai/registry';
import type { Db } from '../../db/client';
import type { EventBus } from '../../events/bus';
import { type Actor, auditedBy } from '../../lib/actor';
import { AppError } from '../../lib/errors';
import { keyset, type Page, toPage } from '../../lib/pagination';
import { findAgentRow } from '../agents/agents.service';
import { recordAudit } from '../audit/audit.service';
import { type ProjectRole, roleAtLeast } from '../projects/roles';
import {
  type ChatEvent,
  type Conversation,
  conversationTopic,
  type Message,
  toConversation,
  toMessage,
} from './chat.dto';
import { conversations, type MessageRow, messages } from './chat.table';
import type { ReplyRunner } from './replies';
import {
  announceReply,
  checkModel,
  insertReply,
  insertReplyRun,
  lockIdleConversation,
  lockIdleWithHistory,
  replyWriter,
  resolveAttachments,
  startReply,
} from './reply-start';

export async function createConversation(opts: {
  db: Db;
  models: ModelRegistry;
  projectId: string;
  actor: Actor;
  title?: string | undefined;
  grounded?: boolean | undefined;
  systemPrompt?: string | undefined;
  model?: string | undefined;
  agentId?: string | undefined;
}): Promise<Conversation> {
  if (opts.model) checkModel(opts.models, opts.model);
  if (opts.agentId) {
    // An agent of another project reads as missing, like everywhere else.
    const agent = await findAgentRow(opts.db, opts.agentId);
    if (!agent || agent.projectId !== opts.projectId) {
      throw new AppError('agents.not_found', 'Not found');
    }
    if (agent.status !== 'active') throw new AppError('agents.inactive', 'This agent is inactive');
    if (opts.model || opts.systemPrompt || opts.grounded) {
      throw new AppError(
        'chat.agent_conversation',
        "A conversation with an agent uses the agent's model, instructions and tools",
      );
    }
  }
  const [row] = await opts.db
    .insert(conversations)
    .values({
      projectId: opts.projectId,
      title: opts.title ?? null,
      grounded: opts.grounded ?? false,
      systemPrompt: opts.systemPrompt ?? null,
      model: opts.model ?? null,
      agentId: opts.agentId ?? null,
      createdBy: opts.actor.userId,
    })
    .returning();
  if (!row) throw new Error('insert returned no row');
  return toConversation(row);
}

export async function listConversations(opts: {
  db: Db;
  projectId: string;
  /** Only those this user started (the help chat's view). */
  createdBy?: string | undefined;
  cursor?: string | undefined;
  limit: number;
}): Promise<Page<Conversation>> {
  const page = keyset({
    at: conversations.createdAt,
    id: conversations.id,
    cursor: opts.cursor,
    direction: 'desc',
  });
  const rows = await opts.db
    .select()
    .from(conversations)
    .where(
      and(
        eq(conversations.projectId, opts.projectId),
        opts.createdBy ? eq(conversations.createdBy, opts.createdBy) : undefined,
        page.where,
      ),
    )
    .orderBy(...page.orderBy)
    .limit(opts.limit + 1);
  return toPage(rows, opts.limit, (r) => ({ at: r.createdAt, id: r.id }), toConversation);
}

export async function listMessages(opts: {
  db: Db;
  conversationId: string;
  cursor?: string | undefined;
  limit: number;
}): Promise<Page<Message>> {
  const page = keyset({
    at: messages.createdAt,
    id: messages.id,
    cursor: opts.cursor,
    direction: 'asc',
  });
  const rows = await opts.db
    .select()
    .from(messages)
    .where(and(eq(messages.conversationId, opts.conversationId), page.where))
    .orderBy(...page.orderBy)
    .limit(opts.limit + 1);
  return toPage(rows, opts.limit, (r) => ({ at: r.createdAt, id: r.id }), toMessage);
}

/** Publishes on the conversation's topic inside `tx`, so the event commits with the change. */
function announce(bus: EventBus, tx: Db, conversationId: string, event: ChatEvent) {
  const { type, ...payload } = event;
  return bus.publish({ topic: conversationTopic(conversationId), type, payload, db: tx });
}

export async function getConversation(db: Db, conversationId: string): Promise<Conversation> {
  const [row] = await db.select().from(conversations).where(eq(conversations.id, conversationId));
  if (!row) throw new AppError('chat.conversation_not_found', 'Not found');
  return toConversation(row);
}

/**
 * Changes only the fields given; null clears title, systemPrompt and model (back to the
 * project default). Takes effect from the next reply on; one streaming keeps its settings.
 */
export async function updateConversation(opts: {
  db: Db;
  bus: EventBus;
  models: ModelRegistry;
  conversationId: string;
  title?: string | null | undefined;
  systemPrompt?: string | null | undefined;
  model?: string | null | undefined;
  grounded?: boolean | undefined;
}): Promise<Conversation> {
  if (opts.model) checkModel(opts.models, opts.model);
  return opts.db.transaction(async (tx) => {
    const [row] = await tx
      .update(conversations)
      .set({
        ...(opts.title === undefined ? {} : { title: opts.title }),
        ...(opts.systemPrompt === undefined ? {} : { systemPrompt: opts.systemPrompt }),
        ...(opts.model === undefined ? {} : { model: opts.model }),
        ...(opts.grounded === undefined ? {} : { grounded: opts.grounded }),
        updatedAt: new Date(),
      })
      .where(eq(conversations.id, opts.conversationId))
      .returning();
    if (!row) throw new AppError('chat.conversation_not_found', 'Not found');
    const ownSettings = [opts.systemPrompt, opts.model].some((v) => v != null) || opts.grounded;
    if (row.agentId && ownSettings) {
      // Rolls the update back: the agent's model, instructions and tools apply.
      throw new AppError(
        'chat.agent_conversation',
        "A conversation with an agent uses the agent's model, instructions and tools",
      );
    }
    const conversation = toConversation(row);
    await announce(opts.bus, tx, row.id, { type: 'conversation.updated', conversation });
    return conversation;
  });
}

/**
 * Deletes the conversation and its messages for good (messages cascade). Under the
 * conversation lock, so no reply can start meanwhile: a reply streaming is cancelled first,
 * and whatever its worker still writes targets a row that no longer exists.
 */
export async function deleteConversation(opts: {
  db: Db;
  bus: EventBus;
  replies: ReplyRunner;
  conversationId: string;
  actor: Actor;
  role: ProjectRole;
}): Promise<{ ok: true }> {
  const [conversation] = await opts.db
    .select()
    .from(conversations)
    .where(eq(conversations.id, opts.conversationId));
  if (!conversation) throw new AppError('chat.conversation_not_found', 'Not found');
  if (conversation.createdBy !== opts.actor.userId && !roleAtLeast(opts.role, 'admin')) {
    throw new AppError(
      'chat.not_creator',
      "Only the conversation's creator or a project admin can delete it",
    );
  }
  const streamingIn = (db: Db) =>
    db
      .select({ id: messages.id })
      .from(messages)
      .where(and(eq(messages.conversationId, conversation.id), eq(messages.status, 'streaming')));
  // Stopped before the delete's transaction, holding no lock and no connection, so each reply
  // can store its outcome (on PGlite, one connection, waiting inside would stall both).
  for (const r of await streamingIn(opts.db)) await opts.replies.stop(r.id);
  const late = await opts.db.transaction(async (tx) => {
    const [locked] = await tx
      .select({ id: conversations.id })
      .from(conversations)
      .where(eq(conversations.id, conversation.id))
      .for('update');
    if (!locked) throw new AppError('chat.conversation_not_found', 'Not found');
    // A reply started since: stopped once the delete commits (its writes then touch nothing).
    const started = await streamingIn(tx);
    await tx.delete(conversations).where(eq(conversations.id, conversation.id));
    await announce(opts.bus, tx, conversation.id, {
      type: 'conversation.deleted',
      conversationId: conversation.id,
    });
    // Last: the audit chain's lock is held until commit.
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'chat.conversation_deleted',
      projectId: conversation.projectId,
      target: conversation.id,
      metadata: { title: conversation.title },
    });
    return started;
  });
  for (const r of late) await opts.replies.stop(r.id);
  return { ok: true };
}

/**
 * Stores the user's message (with its attached files) and an empty streaming reply in one
 * transaction, announces the message, and starts the reply in the background: the call
 * returns before the reply ends. One reply at a time per conversation, so history stays a
 * clean alternation.
 */
export async function sendMessage(opts: {
  db: Db;
  bus: EventBus;
  models: ModelRegistry;
  replies: ReplyRunner;
  conversationId: string;
  actor: Actor;
  content: string;
  model?: string | undefined;
  fileIds?: readonly string[] | undefined;
}): Promise<{ message: Message; replyId: string }> {
  const sent = await opts.db.transaction(async (tx) => {
    const { conversation, history } = await lockIdleWithHistory(tx, opts.conversationId);
    const { model, agent } = await replyWriter(tx, opts.models, conversation, opts.model);
    const attachments = await resolveAttachments(tx, conversation.projectId, opts.fileIds ?? []);
    // The whole row, written as is: the announcement needs no answer from the INSERT, so
    // the question, the reply and the events go out at once. After the last message, even
    // one stamped by a process whose clock runs ahead.
    const latest = history.at(-1)?.createdAt.getTime() ?? 0;
    const userRow: MessageRow = {
      id: randomUUID(),
      conversationId: conversation.id,
      role: 'user',
      content: opts.content,
      authorId: opts.actor.userId,
      model: null,
      status: 'complete',
      inputTokens: null,
      outputTokens: null,
      citations: [],
      attachments,
      errorCode: null,
      createdAt: new Date(Math.max(Date.now(), latest + 1)),
      completedAt: null,
      editedAt: null,
      heartbeatAt: null,
    };
    const message = toMessage(userRow);
    const created: ChatEvent[] = [{ type: 'message.created', message }];
    const { id, role, content, status, createdAt } = userRow;
    history.push({ id, role, content, status, attachments, createdAt });
    const replyId = randomUUID();
    const written = Promise.all([
      tx.insert(messages).values(userRow),
      insertReply(tx, conversation.id, model, userRow.createdAt, !!agent, replyId),
    ]);
    const announce = () => announceReply(tx, opts.bus, conversation.id, replyId, created);
    if (agent) {
      // The run's row refers to the reply's: written once the reply's is.
      await written;
      const run = { conversation, agent, replyId, actor: opts.actor, history };
      await Promise.all([insertReplyRun(tx, run), announce()]);
    } else {
      await Promise.all([written, announce()]);
    }
    const [, reply] = await written;
    return { conversation, message, reply, history, model, agent };
  });
  startReply({ ...sent, replies: opts.replies, actor: opts.actor });
  return { message: sent.message, replyId: sent.reply.id };
}

/**
 * Replaces the conversation's last reply, finished, failed or cancelled, with a new one to
 * the same question: the old reply is deleted (message.deleted), then the new one streams
 * like any other.
 */
export async function regenerateReply(opts: {
  db: Db;
  bus: EventBus;
  models: ModelRegistry;
  replies: ReplyRunner;
  conversationId: string;
  actor: Actor;
  model?: string | undefined;
}): Promise<{ replyId: string }> {
  const { conversation, reply, model, agent } = await opts.db.transaction(async (tx) => {
    const conversation = await lockIdleConversation(tx, opts.conversationId);
    const [last] = await tx
      .select()
      .from(messages)
      .where(eq(messages.conversationId, conversation.id))
      .orderBy(desc(messages.createdAt), desc(messages.id))
      .limit(1);
    if (last?.role !== 'assistant') {
      throw new AppError(
        'chat.nothing_to_regenerate',
        'The conversation does not end with a reply; send a message instead',
      );
    }
    const { model, agent } = await replyWriter(tx, opts.models, conversation, opts.model);
    await tx.delete(messages).where(eq(messages.id, last.id));
    const reply = await insertReply(tx, conversation.id, model, last.createdAt, !!agent);
    const replyId = reply.id;
    if (agent) await insertReplyRun(tx, { conversation, agent, replyId, actor: opts.actor });
    await announceReply(tx, opts.bus, conversation.id, replyId, [
      { type: 'message.deleted', messageId: last.id },
    ]);
    return { conversation, reply, model, agent };
  });
  startReply({ replies: opts.replies, conversation, reply, model, agent, actor: opts.actor });
  return { replyId: reply.id };
}

/** The messages after `m` in the conversation's order (oldest first, by time then id). */
const after = (m: MessageRow) =>
  and(
    eq(messages.conversationId, m.conversationId),
    or(
      gt(messages.createdAt, m.createdAt),
      and(eq(messages.createdAt, m.createdAt), gt(messages.id, m.id)),
    ),
  );

/**
 * Rewrites a user message and answers it again. History after the edited message is
 * discarded, not branched: every later message is deleted (messages.truncated), the edited
 * one is announced (message.updated), and a new reply starts. Attachments stay as sent.
 */
export async function editMessage(opts: {
  db: Db;
  bus: EventBus;
  models: ModelRegistry;
  replies: ReplyRunner;
  messageId: string;
  actor: Actor;
  role: ProjectRole;
  content: string;
  model?: string | undefined;
}): Promise<{ message: Message; replyId: string }> {
  const [target] = await opts.db.select().from(messages).where(eq(messages.id, opts.messageId));
  if (!target) throw new AppError('chat.message_not_found', 'Not found');
  if (target.role !== 'user') {
    throw new AppError(
      'chat.message_not_editable',
      'Only your questions can be edited; regenerate a reply instead',
    );
  }
  if (target.authorId !== opts.actor.userId && !roleAtLeast(opts.role, 'admin')) {
    throw new AppError(
      'chat.not_author',
      "Only the message's author or a project admin can edit it",
    );
  }
  const result = await opts.db.transaction(async (tx) => {
    const conversation = await lockIdleConversation(tx, target.conversationId);
    const { model, agent } = await replyWriter(tx, opts.models, conversation, opts.model);
    // Under the lock: a concurrent edit of an earlier message may have deleted this one.
    const [edited] = await tx
      .update(messages)
      .set({ content: opts.content, editedAt: new Date() })
      .where(eq(messages.id, target.id))
      .returning();
    if (!edited) throw new AppError('chat.message_not_found', 'Not found');
    const dropped = await tx.delete(messages).where(after(edited)).returning({ id: messages.id });
    const message = toMessage(edited);
    const changed: ChatEvent[] = [{ type: 'message.updated', message }];
    if (dropped.length > 0) {
      changed.push({
        type: 'messages.truncated',
        afterMessageId: edited.id,
        messageIds: dropped.map((d) => d.id),
      });
    }
    const reply = await insertReply(tx, conversation.id, model, edited.createdAt, !!agent);
    const replyId = reply.id;
    if (agent) await insertReplyRun(tx, { conversation, agent, replyId, actor: opts.actor });
    await announceReply(tx, opts.bus, conversation.id, replyId, changed);
    return { conversation, message, reply, model, agent };
  });
  startReply({ ...result, replies: opts.replies, actor: opts.actor });
  return { message: result.message, replyId: result.reply.id };
}
