import { and, eq } from 'drizzle-orm';
import { ModelError } from '../../ai/provider';
import type { ModelRegistry } from '../../ai/registry';
import type { Db } from '../../db/client';
import type { EventBus } from '../../events/bus';
import { type Actor, actorKeyId } from '../../lib/actor';
import { AppError } from '../../lib/errors';
import { keyset, type Page, toPage } from '../../lib/pagination';
import {
  type Conversation,
  conversationTopic,
  type Message,
  toConversation,
  toMessage,
} from './chat.dto';
import { conversations, messages } from './chat.table';
import type { ReplyRunner } from './replies';

export async function projectOfConversation(
  db: Db,
  conversationId: string,
): Promise<string | null> {
  const [row] = await db
    .select({ projectId: conversations.projectId })
    .from(conversations)
    .where(eq(conversations.id, conversationId));
  return row?.projectId ?? null;
}

export async function projectOfReply(db: Db, replyId: string): Promise<string | null> {
  const [row] = await db
    .select({ projectId: conversations.projectId })
    .from(messages)
    .innerJoin(conversations, eq(conversations.id, messages.conversationId))
    .where(and(eq(messages.id, replyId), eq(messages.role, 'assistant')));
  return row?.projectId ?? null;
}

function checkModel(models: ModelRegistry, model: string) {
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

export async function createConversation(opts: {
  db: Db;
  models: ModelRegistry;
  projectId: string;
  actor: Actor;
  title?: string | undefined;
  grounded?: boolean | undefined;
  systemPrompt?: string | undefined;
  model?: string | undefined;
}): Promise<Conversation> {
  if (opts.model) checkModel(opts.models, opts.model);
  const [row] = await opts.db
    .insert(conversations)
    .values({
      projectId: opts.projectId,
      title: opts.title ?? null,
      grounded: opts.grounded ?? false,
      systemPrompt: opts.systemPrompt ?? null,
      model: opts.model ?? null,
      createdBy: opts.actor.userId,
    })
    .returning();
  if (!row) throw new Error('insert returned no row');
  return toConversation(row);
}

export async function listConversations(opts: {
  db: Db;
  projectId: string;
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
    .where(and(eq(conversations.projectId, opts.projectId), page.where))
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

/**
 * Stores the user's message and an empty streaming reply in one transaction, announces the
 * message, and starts the reply in the background: the call returns before the reply ends.
 * One reply at a time per conversation, so history stays a clean alternation.
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
}): Promise<{ message: Message; replyId: string }> {
  const { conversation, message, replyId, model } = await opts.db.transaction(async (tx) => {
    const [conversation] = await tx
      .select()
      .from(conversations)
      .where(eq(conversations.id, opts.conversationId))
      .for('update');
    if (!conversation) throw new AppError('chat.conversation_not_found', 'Not found');
    const model = opts.model ?? conversation.model ?? opts.models.defaultModel;
    checkModel(opts.models, model);
    const [busy] = await tx
      .select({ id: messages.id })
      .from(messages)
      .where(and(eq(messages.conversationId, conversation.id), eq(messages.status, 'streaming')))
      .limit(1);
    if (busy) {
      throw new AppError(
        'chat.reply_in_progress',
        'Wait for the current reply to finish, or cancel it',
      );
    }
    const [userRow] = await tx
      .insert(messages)
      .values({
        conversationId: conversation.id,
        role: 'user',
        content: opts.content,
        authorId: opts.actor.userId,
      })
      .returning();
    if (!userRow) throw new Error('insert returned no row');
    // Created a millisecond later so "oldest first" always puts the reply after the question.
    // Computed in JS, not in raw SQL: a Date interpolated into sql`...` skips drizzle's column
    // mapping, and postgres.js (whose date serialiser drizzle turns off) throws
    // ERR_INVALID_ARG_TYPE on it, so every send failed on PostgreSQL (PGlite accepted it).
    // Timestamps have millisecond precision, so +1 ms is exact.
    const [reply] = await tx
      .insert(messages)
      .values({
        conversationId: conversation.id,
        role: 'assistant',
        content: '',
        model,
        status: 'streaming',
        heartbeatAt: new Date(),
        createdAt: new Date(userRow.createdAt.getTime() + 1),
      })
      .returning({ id: messages.id });
    if (!reply) throw new Error('insert returned no row');
    await tx
      .update(conversations)
      .set({ updatedAt: new Date() })
      .where(eq(conversations.id, conversation.id));
    const message = toMessage(userRow);
    await opts.bus.publish({
      topic: conversationTopic(conversation.id),
      type: 'message.created',
      payload: { message },
      db: tx,
    });
    return { conversation, message, replyId: reply.id, model };
  });
  opts.replies.start({
    conversation,
    replyId,
    model,
    userId: opts.actor.userId,
    keyId: actorKeyId(opts.actor),
  });
  return { message, replyId };
}
