import { and, asc, eq, inArray } from 'drizzle-orm';
import type { ModelRegistry } from '../../ai/registry';
import type { Db } from '../../db/client';
import type { EventBus } from '../../events/bus';
import type { Actor } from '../../lib/actor';
import { AppError } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import type { Page } from '../../lib/pagination';
import type { RateLimiter } from '../../lib/rate-limit';
import { notifyBudgetChange } from '../budgets/budgets.service';
import { budgetLimits } from '../budgets/budgets.table';
import type { Conversation, Message } from '../chat/chat.dto';
import * as chat from '../chat/chat.service';
import { conversations, messages } from '../chat/chat.table';
import type { ReplyRunner } from '../chat/replies';
import { addDocument } from '../documents/documents.service';
import { documentPassages, documents } from '../documents/documents.table';
import { projects } from '../projects/projects.table';
import { type DocFile, fingerprint, passagesOf, readDocs } from './help.docs';

/**
 * The platform's help project. A fixed id rather than a marker column: every instance agrees
 * on it without a lookup, and creating it is one insert that concurrent starts cannot repeat.
 * It has no members, so no project procedure (list, get, join, usage) ever reaches it.
 */
export const HELP_PROJECT_ID = '5e1f0000-0000-4000-8000-000000000001';

const HELP_SYSTEM_PROMPT =
  "You are the in-app help of SmartSpace, a workspace where teams run AI agents. Answer the user's questions about using SmartSpace from its documentation only, briefly and precisely. Never invent settings, procedures or commands the documentation does not name.";

export interface HelpSettings {
  docsPath: string;
  budgetPerDay: bigint;
  messagesPerHour: number;
}

const HOUR_MS = 3_600_000;

/** Creates the help project if no instance has yet; safe to run from many at once. */
export async function ensureHelpProject(db: Db): Promise<void> {
  await db
    .insert(projects)
    .values({
      id: HELP_PROJECT_ID,
      name: 'SmartSpace help',
      description: 'Platform documentation for the in-app help chat; has no members.',
    })
    .onConflictDoNothing({ target: projects.id });
}

/**
 * Sets the help project's spending limit to the configured amount per UTC day (the last
 * instance to start wins, as for any limit). Help that is off keeps no limit.
 */
export async function applyHelpBudget(db: Db, perDay: bigint): Promise<void> {
  const identity = and(
    eq(budgetLimits.projectId, HELP_PROJECT_ID),
    eq(budgetLimits.scope, 'project'),
    eq(budgetLimits.period, 'day'),
  );
  if (perDay === 0n) {
    await db.delete(budgetLimits).where(identity);
    await notifyBudgetChange(db, HELP_PROJECT_ID);
    return;
  }
  await db
    .insert(budgetLimits)
    .values({
      projectId: HELP_PROJECT_ID,
      scope: 'project',
      scopeId: null,
      period: 'day',
      amount: perDay,
      alertAt: [],
    })
    .onConflictDoUpdate({
      target: [
        budgetLimits.projectId,
        budgetLimits.scope,
        budgetLimits.scopeId,
        budgetLimits.period,
      ],
      set: { amount: perDay },
    });
  await notifyBudgetChange(db, HELP_PROJECT_ID);
}

/** The help project's documents as stored: names and passages in order. */
async function storedDocs(db: Db): Promise<{ name: string; passages: string[] }[]> {
  const docs = await db
    .select({ id: documents.id, name: documents.name })
    .from(documents)
    .where(eq(documents.projectId, HELP_PROJECT_ID));
  if (docs.length === 0) return [];
  const rows = await db
    .select({ documentId: documentPassages.documentId, content: documentPassages.content })
    .from(documentPassages)
    .where(
      inArray(
        documentPassages.documentId,
        docs.map((d) => d.id),
      ),
    )
    .orderBy(asc(documentPassages.documentId), asc(documentPassages.ordinal));
  return docs.map((d) => ({
    name: d.name,
    passages: rows.filter((r) => r.documentId === d.id).map((r) => r.content),
  }));
}

/**
 * Makes the help project's documents exactly `docs`, unless they already are: restarts with
 * unchanged docs write nothing. The help project's row is locked for the comparison and the
 * rewrite, so instances starting together load the docs once.
 */
export async function replaceHelpDocs(
  db: Db,
  docs: DocFile[],
): Promise<{ changed: boolean; documents: number }> {
  const wanted = fingerprint(passagesOf(docs));
  return db.transaction(async (tx) => {
    await tx
      .select({ id: projects.id })
      .from(projects)
      .where(eq(projects.id, HELP_PROJECT_ID))
      .for('update');
    if (fingerprint(await storedDocs(tx)) === wanted) {
      return { changed: false, documents: docs.length };
    }
    // Passages go with their documents (cascade).
    await tx.delete(documents).where(eq(documents.projectId, HELP_PROJECT_ID));
    for (const d of docs) {
      await addDocument({ db: tx, projectId: HELP_PROJECT_ID, name: d.name, content: d.content });
    }
    return { changed: true, documents: docs.length };
  });
}

/** Start-up: the project, its budget, and the docs read from `settings.docsPath`. */
export async function setUpHelp(opts: { db: Db; settings: HelpSettings; log: Logger }) {
  await ensureHelpProject(opts.db);
  await applyHelpBudget(opts.db, opts.settings.budgetPerDay);
  const docs = await readDocs(opts.settings.docsPath);
  const result = await replaceHelpDocs(opts.db, docs);
  opts.log.info(
    { path: opts.settings.docsPath, documents: result.documents, changed: result.changed },
    result.changed ? 'help docs loaded' : 'help docs unchanged',
  );
  return result;
}

const conversationNotFound = () =>
  new AppError('help.conversation_not_found', 'No such help conversation');

/** The caller's own help conversation; anyone else's does not exist for them. */
export async function requireOwnConversation(
  db: Db,
  userId: string,
  conversationId: string,
): Promise<void> {
  const [row] = await db
    .select({ id: conversations.id })
    .from(conversations)
    .where(
      and(
        eq(conversations.id, conversationId),
        eq(conversations.projectId, HELP_PROJECT_ID),
        eq(conversations.createdBy, userId),
      ),
    );
  if (!row) throw conversationNotFound();
}

/** The caller's own help reply (an assistant message in one of their help conversations). */
export async function requireOwnReply(db: Db, userId: string, replyId: string): Promise<void> {
  const [row] = await db
    .select({ id: messages.id })
    .from(messages)
    .innerJoin(conversations, eq(conversations.id, messages.conversationId))
    .where(
      and(
        eq(messages.id, replyId),
        eq(messages.role, 'assistant'),
        eq(conversations.projectId, HELP_PROJECT_ID),
        eq(conversations.createdBy, userId),
      ),
    );
  if (!row) throw new AppError('help.reply_not_found', 'No such help reply');
}

export async function createHelpConversation(opts: {
  db: Db;
  models: ModelRegistry;
  actor: Actor;
  title?: string | undefined;
}): Promise<Conversation> {
  // Normally there since start-up; cheap to make sure after a failed start-up step.
  await ensureHelpProject(opts.db);
  return chat.createConversation({
    db: opts.db,
    models: opts.models,
    projectId: HELP_PROJECT_ID,
    actor: opts.actor,
    title: opts.title,
    grounded: true,
    systemPrompt: HELP_SYSTEM_PROMPT,
  });
}

/** The caller's help conversations, newest first. */
export function listHelpConversations(opts: {
  db: Db;
  userId: string;
  cursor?: string | undefined;
  limit: number;
}): Promise<Page<Conversation>> {
  return chat.listConversations({
    db: opts.db,
    projectId: HELP_PROJECT_ID,
    createdBy: opts.userId,
    cursor: opts.cursor,
    limit: opts.limit,
  });
}

/**
 * Asks a question in the caller's help conversation: refused while help is off and past the
 * caller's hourly allowance, then exactly a chat message, its reply streamed by the chat reply
 * worker through the gateway (charged to the help project's budget).
 */
export async function sendHelpMessage(opts: {
  db: Db;
  bus: EventBus;
  models: ModelRegistry;
  replies: ReplyRunner;
  limiter: RateLimiter;
  settings: HelpSettings;
  actor: Actor;
  conversationId: string;
  content: string;
}): Promise<{ message: Message; replyId: string }> {
  if (opts.settings.budgetPerDay === 0n) {
    throw new AppError('help.disabled', 'The in-app help is turned off on this server');
  }
  const perHour = opts.settings.messagesPerHour;
  if (perHour > 0) {
    const r = await opts.limiter.hit(`help:${opts.actor.userId}`, perHour, HOUR_MS);
    if (!r.allowed) {
      throw new AppError(
        'rate_limited',
        `You can ask help ${perHour} questions per hour; try again later`,
        { retryAfterMs: r.retryAfterMs },
      );
    }
  }
  return chat.sendMessage({
    db: opts.db,
    bus: opts.bus,
    models: opts.models,
    replies: opts.replies,
    conversationId: opts.conversationId,
    actor: opts.actor,
    content: opts.content,
  });
}
