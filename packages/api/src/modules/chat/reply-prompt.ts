import { asc, eq } from 'drizzle-orm';
import type { ChatTurn } from '../../ai/provider';
import type { Db } from '../../db/client';
import { searchPassages } from '../documents/documents.service';
import { type Citation, type ConversationRow, messages } from './chat.table';

const GROUNDING_PASSAGES = 4;

const DEFAULT_SYSTEM =
  'You are a helpful assistant in SmartSpace, a workspace where teams run AI agents. Answer clearly and concisely.';

/** The conversation so far as model turns, its system prompt, and (when grounded) citations. */
export async function buildReplyPrompt(opts: {
  db: Db;
  conversation: ConversationRow;
  replyId: string;
}) {
  const { db, conversation, replyId } = opts;
  const rows = await db
    .select({
      id: messages.id,
      role: messages.role,
      content: messages.content,
      status: messages.status,
    })
    .from(messages)
    .where(eq(messages.conversationId, conversation.id))
    .orderBy(asc(messages.createdAt), asc(messages.id));
  // Failed or cancelled replies keep their partial text for people, not for the model.
  const turns: ChatTurn[] = rows
    .filter((r) => r.id !== replyId && (r.role === 'user' || r.status === 'complete'))
    .map((r) => ({ role: r.role, content: r.content }));
  let system = conversation.systemPrompt ?? DEFAULT_SYSTEM;
  let citations: Citation[] = [];
  // Chat turns are plain text (only agent runs use content blocks).
  const last = [...turns].reverse().find((t) => t.role === 'user')?.content;
  const question = typeof last === 'string' ? last : '';
  if (conversation.grounded) {
    const passages = await searchPassages({
      db,
      projectId: conversation.projectId,
      query: question,
      limit: GROUNDING_PASSAGES,
    });
    citations = passages.map((p) => ({
      fileId: p.fileId,
      name: p.name,
      excerpt: p.content.slice(0, 300),
    }));
    system +=
      passages.length === 0
        ? "\n\nNo project document matches this question. Say that the project's documents do not cover it."
        : `\n\nAnswer from these project documents and cite them by name in [brackets]. If they do not contain the answer, say so.\n\n${passages
            .map(
              (p, i) => `<document index="${i + 1}" name="${p.name}">\n${p.content}\n</document>`,
            )
            .join('\n\n')}`;
  }
  return { turns, system, citations };
}
