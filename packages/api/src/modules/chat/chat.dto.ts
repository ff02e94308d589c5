import type { ModelErrorCode } from '../../ai/ai.errors';
import type { AppErrorCode } from '../../lib/errors';
import type { ReplyFailureCode } from './chat.errors';
import type { Citation, ConversationRow, MessageRow } from './chat.table';

export interface Conversation {
  id: string;
  projectId: string;
  title: string | null;
  grounded: boolean;
  systemPrompt: string | null;
  model: string | null;
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
  citations: Citation[];
  errorCode: string | null;
  createdAt: string;
  completedAt: string | null;
}

export type ChatEvent =
  | { type: 'message.created'; message: Message }
  | { type: 'reply.started'; replyId: string }
  | { type: 'reply.delta'; replyId: string; text: string }
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
    errorCode: r.errorCode,
    createdAt: r.createdAt.toISOString(),
    completedAt: r.completedAt?.toISOString() ?? null,
  };
}
