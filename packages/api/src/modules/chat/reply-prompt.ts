import { and, asc, desc, eq, inArray, type SQL, sql } from 'drizzle-orm';
import type { ChatTurn } from '../../ai/provider';
import type { Db } from '../../db/client';
import { type Passage, searchPassages } from '../documents/documents.service';
import { documentPassages, documents } from '../documents/documents.table';
import { type Attachment, type Citation, type ConversationRow, messages } from './chat.table';

const GROUNDING_PASSAGES = 4;
/** Passages of the attached files given to the model, across all of them. */
const ATTACHMENT_PASSAGES = 8;

const DEFAULT_SYSTEM =
  'You are a helpful assistant in SmartSpace, a workspace where teams run AI agents. Answer clearly and concisely.';

/**
 * The conversation so far as model turns, its system prompt, and the citations of the
 * passages it quotes: from files attached in the conversation, and from the project's
 * documents when the conversation is grounded.
 */
export async function buildReplyPrompt(opts: {
  db: Db;
  conversation: ConversationRow;
  replyId: string;
  /** The conversation's messages when the caller has them already (see `promptRows`). */
  rows?: PromptRow[] | undefined;
}) {
  const { db, conversation, replyId } = opts;
  const rows = opts.rows ?? (await promptRows(db, conversation.id));
  // Failed or cancelled replies keep their partial text for people, not for the model.
  const turns: ChatTurn[] = rows
    .filter((r) => r.id !== replyId && (r.role === 'user' || r.status === 'complete'))
    .map((r) => ({ role: r.role, content: r.content }));
  // Chat turns are plain text (only agent runs use content blocks).
  const last = [...turns].reverse().find((t) => t.role === 'user')?.content;
  const question = typeof last === 'string' ? last : '';
  // Files attached anywhere in the history stay readable for follow-up questions.
  const attached = uniqueAttachments(
    rows.filter((r) => r.id !== replyId).flatMap((r) => r.attachments),
  );
  const fromFiles = await attachmentPassages({
    db,
    projectId: conversation.projectId,
    fileIds: attached.map((a) => a.fileId),
    question,
  });
  const fromProject = conversation.grounded
    ? await searchPassages({
        db,
        projectId: conversation.projectId,
        query: question,
        limit: GROUNDING_PASSAGES,
      })
    : [];
  const seen = new Set(fromFiles.map(passageKey));
  const passages = [...fromFiles, ...fromProject.filter((p) => !seen.has(passageKey(p)))];
  const citations: Citation[] = passages.map((p) => ({
    fileId: p.fileId,
    name: p.name,
    excerpt: p.content.slice(0, 300),
  }));
  const system = groundedSystem({
    base: conversation.systemPrompt ?? DEFAULT_SYSTEM,
    grounded: conversation.grounded,
    attached,
    passages,
    withText: new Set(fromFiles.map((p) => p.fileId)),
  });
  return { turns, system, citations };
}

/** What a reply's prompt reads of each message of its conversation, oldest first. */
export function promptRows(db: Db, conversationId: string) {
  return db
    .select({
      id: messages.id,
      role: messages.role,
      content: messages.content,
      status: messages.status,
      attachments: messages.attachments,
      createdAt: messages.createdAt,
    })
    .from(messages)
    .where(eq(messages.conversationId, conversationId))
    .orderBy(asc(messages.createdAt), asc(messages.id));
}

export type PromptRow = Awaited<ReturnType<typeof promptRows>>[number];

const passageKey = (p: Passage) => `${p.documentId}\u0000${p.content}`;

function uniqueAttachments(all: Attachment[]): Attachment[] {
  const byId = new Map<string, Attachment>();
  for (const a of all) if (!byId.has(a.fileId)) byId.set(a.fileId, a);
  return [...byId.values()];
}

/**
 * Passages of the attached files' documents (their extracted text), those sharing words with
 * the question first, then each file from its beginning, so "summarise this" works too.
 * Scoped to the project: a file deleted since, or moved out of reach, contributes nothing.
 */
async function attachmentPassages(opts: {
  db: Db;
  projectId: string;
  fileIds: string[];
  question: string;
}): Promise<Passage[]> {
  if (opts.fileIds.length === 0) return [];
  const words = opts.question.match(/[\p{L}\p{N}]+/gu) ?? [];
  const rank: SQL<number> =
    words.length === 0
      ? sql<number>`0`
      : sql<number>`ts_rank(${documentPassages.tsv}, websearch_to_tsquery('english', ${words.join(' or ')}))`;
  return opts.db
    .select({
      documentId: documents.id,
      fileId: documents.fileId,
      name: documents.name,
      content: documentPassages.content,
      rank,
    })
    .from(documentPassages)
    .innerJoin(documents, eq(documents.id, documentPassages.documentId))
    .where(and(eq(documents.projectId, opts.projectId), inArray(documents.fileId, opts.fileIds)))
    .orderBy(desc(rank), asc(documentPassages.ordinal), asc(documents.id))
    .limit(ATTACHMENT_PASSAGES);
}

function groundedSystem(opts: {
  base: string;
  grounded: boolean;
  attached: Attachment[];
  passages: Passage[];
  withText: Set<string | null>;
}): string {
  const { base, grounded, attached, passages } = opts;
  if (!grounded && attached.length === 0) return base;
  let system = base;
  if (attached.length > 0) {
    system += `\n\nThe user attached these files: ${attached.map((a) => a.name).join(', ')}.`;
    const unreadable = attached.filter((a) => !opts.withText.has(a.fileId));
    if (unreadable.length > 0) {
      system += ` No text could be read from: ${unreadable.map((a) => a.name).join(', ')}.`;
    }
  }
  if (passages.length === 0) {
    return grounded
      ? `${system}\n\nNo project document matches this question. Say that the project's documents do not cover it.`
      : system;
  }
  const source = grounded ? 'project documents' : 'attached files';
  return `${system}\n\nAnswer from these ${source} and cite them by name in [brackets]. If they do not contain the answer, say so.\n\n${passages
    .map((p, i) => `<document index="${i + 1}" name="${p.name}">\n${p.content}\n</document>`)
    .join('\n\n')}`;
}
