import { boolean, index, integer, jsonb, pgEnum, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { ts } from '../../db/columns';
import { agents } from '../agents/agents.table';
import { projects } from '../projects/projects.table';
import { users } from '../users/users.table';

export const conversations = pgTable(
  'conversations',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    projectId: uuid('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    title: text('title'),
    grounded: boolean('grounded').notNull().default(false),
    systemPrompt: text('system_prompt'),
    model: text('model'),
    // A conversation with an agent: each reply is a run of it (runs.reply_id). Deleting the
    // agent leaves a plain conversation.
    agentId: uuid('agent_id').references(() => agents.id, { onDelete: 'set null' }),
    createdBy: uuid('created_by').references(() => users.id, { onDelete: 'set null' }),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    index('conversations_project_idx').on(t.projectId, t.createdAt, t.id),
    // A member's own conversations in a shared project (help.conversations.list).
    index('conversations_project_creator_idx').on(t.projectId, t.createdBy, t.createdAt, t.id),
  ],
);

export const messageRole = pgEnum('message_role', ['user', 'assistant']);
export const messageStatus = pgEnum('message_status', [
  'complete',
  'streaming',
  'failed',
  'cancelled',
]);

export interface Citation {
  fileId: string | null;
  name: string;
  excerpt: string;
}

/** A project file attached to a user message; `name` is the file's name when attached. */
export interface Attachment {
  fileId: string;
  name: string;
}

/** A user message, or an assistant reply (its id is the `replyId`, its row exists from the start). */
export const messages = pgTable(
  'messages',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    conversationId: uuid('conversation_id')
      .notNull()
      .references(() => conversations.id, { onDelete: 'cascade' }),
    role: messageRole('role').notNull(),
    content: text('content').notNull(),
    authorId: uuid('author_id').references(() => users.id, { onDelete: 'set null' }),
    model: text('model'),
    status: messageStatus('status').notNull().default('complete'),
    inputTokens: integer('input_tokens'),
    outputTokens: integer('output_tokens'),
    citations: jsonb('citations').$type<Citation[]>().notNull().default([]),
    // Kept as a snapshot: a file deleted later leaves its name here, and its fileId then
    // answers files.not_found, as for any deleted file.
    attachments: jsonb('attachments').$type<Attachment[]>().notNull().default([]),
    errorCode: text('error_code'),
    createdAt: ts('created_at').notNull().defaultNow(),
    completedAt: ts('completed_at'),
    /** Set when the author edited the text (chat.edit). */
    editedAt: ts('edited_at'),
    // Refreshed while a reply streams; a stale one means the process died mid-reply.
    heartbeatAt: ts('heartbeat_at'),
  },
  (t) => [
    index('messages_conversation_idx').on(t.conversationId, t.createdAt, t.id),
    index('messages_streaming_idx').on(t.status, t.heartbeatAt),
  ],
);

export type ConversationRow = typeof conversations.$inferSelect;
export type MessageRow = typeof messages.$inferSelect;
