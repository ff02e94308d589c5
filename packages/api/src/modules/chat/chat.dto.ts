import type { ModelErrorCode } from '../../ai/ai.errors';
import type { AppErrorCode } from '../../lib/errors';
import type { RunEvent } from '../runs/runs.dto';
import type { ReplyFailureCode } from './chat.errors';
import type { Attachment, Citation, ConversationRow, MessageRow } from './chat.table';

export type { Attachment, Citation };

export interface Conversation {
  id: string;
  projectId: string;
  title: string | null;
  grounded: boolean;
  systemPrompt: string | null;
  model: string | null;
  /** A conversation with an agent: each reply is a run of it (tools, handoffs, approvals). */
  agentId: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface Message {
  id: string;
  conversationId: string;
  role: 'user' | 'assistant';
  content: string;
  authorId: string | null;
  model: string | null;
  status: 'complete' | 'streaming' | 'failed' | 'cancelled';
  usage: { inputTokens: number; outputTokens: number } | null;
  /** Grounded replies: the passages given to the model; `fileId` opens the source file. */
  citations: Citation[];
  /** User messages: the project files sent with it (chat.send fileIds). */
  attachments: Attachment[];
  errorCode: string | null;
  createdAt: string;
  completedAt: string | null;
  /** When the author last edited the text (chat.edit); null if never. */
  editedAt: string | null;
}

/**
 * Everything published on a conversation's topic (chat.onEvent), oldest first.
 * - `chat.send`: message.created, then the reply's reply.started, reply.delta..., and
 *   reply.completed or reply.failed.
 * - `chat.regenerate`: message.deleted (the replaced reply), then the new reply's events.
 * - `chat.edit`: message.updated (the edited question), messages.truncated when messages
 *   followed it (they are deleted: history is discarded, not branched), then the new
 *   reply's events.
 * - `chat.conversations.update`: conversation.updated.
 * - `chat.conversations.delete`: conversation.deleted, the end of the topic; a reply that was
 *   streaming is cancelled first, so its reply.failed (reply.cancelled) usually precedes it
 *   (always when it ran on the instance that deleted).
 */
export type ChatEvent =
  | { type: 'message.created'; message: Message }
  | { type: 'message.updated'; message: Message }
  | { type: 'message.deleted'; messageId: string }
  /** Every message after `afterMessageId` was deleted; `messageIds` lists them. */
  | { type: 'messages.truncated'; afterMessageId: string; messageIds: string[] }
  | { type: 'conversation.updated'; conversation: Conversation }
  | { type: 'conversation.deleted'; conversationId: string }
  | { type: 'reply.started'; replyId: string }
  | { type: 'reply.delta'; replyId: string; text: string }
  /**
   * Conversations with an agent: a step of the run writing the reply (tool.called,
   * tool.result, handoff, usage, approval.requested, approval.decided, step.started), as
   * runs.onProgress has it.
   */
  | { type: 'reply.progress'; replyId: string; runId: string; event: RunEvent }
  | {
      type: 'reply.completed';
      message: Message;
      usage: { inputTokens: number; outputTokens: number };
    }
  | { type: 'reply.failed'; replyId: string; appCode: ReplyErrorCode; message: string };

/**
 * What a reply fails with: its own codes, or the gateway's and the model's (a budget, a
 * policy, a provider error), so clients can branch on every case.
 */
export type ReplyErrorCode = ReplyFailureCode | AppErrorCode | ModelErrorCode;

export const conversationTopic = (conversationId: string) => `conversation:${conversationId}`;

export function toConversation(r: ConversationRow): Conversation {
  return {
    id: r.id,
    projectId: r.projectId,
    title: r.title,
    grounded: r.grounded,
    systemPrompt: r.systemPrompt,
    model: r.model,
    agentId: r.agentId,
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
  };
}

export function toMessage(r: MessageRow): Message {
  return {
    id: r.id,
    conversationId: r.conversationId,
    role: r.role,
    content: r.content,
    authorId: r.authorId,
    model: r.model,
    status: r.status,
    usage:
      r.inputTokens === null || r.outputTokens === null
        ? null
        : { inputTokens: r.inputTokens, outputTokens: r.outputTokens },
    citations: r.citations,
    attachments: r.attachments,
    errorCode: r.errorCode,
    createdAt: r.createdAt.toISOString(),
    completedAt: r.completedAt?.toISOString() ?? null,
    editedAt: r.editedAt?.toISOString() ?? null,
  };
}
