import { and, asc, eq, lt, sql } from 'drizzle-orm';
import { type ChatTurn, ModelError, type Usage } from '../../ai/provider';
import type { ModelRegistry } from '../../ai/registry';
import type { Logger } from '../../context';
import type { DatabaseHandle, Db } from '../../db/client';
import type { EventBus } from '../../events/bus';
import { AppError } from '../../lib/errors';
import { searchPassages } from '../documents/documents.service';
import type { Gateway } from '../gateway/gateway';
import { type ChatEvent, conversationTopic, toMessage } from './chat.dto';
import { type Citation, type ConversationRow, messages } from './chat.table';
import { fitHistory } from './context-window';
import { trackReplyProgress } from './reply-progress';

const CANCEL_CHANNEL = 'smartspace_reply_cancel';
/** Deltas arriving within this window go out as one event: fewer rows, same text. */
const DELTA_COALESCE_MS = 25;
/** A streaming reply whose heartbeat is older than this lost its process. */
export const STALE_REPLY_MS = 30_000;
const GROUNDING_PASSAGES = 4;
const SHUTDOWN = 'shutdown';

const DEFAULT_SYSTEM =
  'You are a helpful assistant in SmartSpace, a workspace where teams run AI agents. Answer clearly and concisely.';

export interface ReplyRunnerDeps {
  db: Db;
  bus: EventBus;
  models: ModelRegistry;
  gateway: Gateway;
  log: Logger;
  maxOutputTokens: number;
}

/**
 * Runs assistant replies in the background of the process that accepted `chat.send`:
 * streams from the model, publishes deltas to the event log, keeps the row's text and
 * heartbeat current (reply-progress.ts), stores the outcome. Cancels reach the owning
 * process through NOTIFY; a sweeper fails replies whose process died, so none stays
 * "streaming" forever.
 */
export async function createReplyRunner(handle: DatabaseHandle, deps: ReplyRunnerDeps) {
  const inFlight = new Map<string, { abort: AbortController; done: Promise<void> }>();
  const unlisten = await handle.listen(CANCEL_CHANNEL, (replyId) =>
    inFlight.get(replyId)?.abort.abort(),
  );

  const publish = (conversationId: string, event: ChatEvent, db: Db = deps.db) => {
    const { type, ...payload } = event;
    return deps.bus.publish({ topic: conversationTopic(conversationId), type, payload, db });
  };

  async function buildPrompt(conversation: ConversationRow, replyId: string) {
    const rows = await deps.db
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
        db: deps.db,
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

  async function run(opts: {
    conversation: ConversationRow;
    replyId: string;
    model: string;
    userId: string | null;
    signal: AbortSignal;
  }) {
    const { conversation, replyId, model, signal } = opts;
    const info = deps.models.get(model);
    let text = '';
    let pending = '';
    let flushTimer: NodeJS.Timeout | null = null;
    let publishing: Promise<unknown> = Promise.resolve();
    // Stopped before each final write: a flush still in flight must not land after it.
    const progress = trackReplyProgress({ db: deps.db, replyId, log: deps.log });
    const flush = () => {
      if (flushTimer) clearTimeout(flushTimer);
      flushTimer = null;
      if (!pending) return publishing;
      const chunk = pending;
      pending = '';
      // Chained: deltas go out in order, and all of them before the final event. Only text
      // that reached the event log is stored as progress.
      publishing = publishing
        .then(() => publish(conversation.id, { type: 'reply.delta', replyId, text: chunk }))
        .then(() => progress.published(chunk));
      return publishing;
    };

    try {
      await publish(conversation.id, { type: 'reply.started', replyId });
      const { turns, system, citations } = await buildPrompt(conversation, replyId);
      const maxOutputTokens = Math.min(
        deps.maxOutputTokens,
        info?.maxOutputTokens ?? deps.maxOutputTokens,
      );
      const history = fitHistory({
        turns,
        system,
        contextWindow: info?.contextWindow ?? 200_000,
        maxOutputTokens,
      });
      let usage: Usage = { inputTokens: 0, outputTokens: 0 };
      // Through the gateway: policy, rate limits, budgets and balance apply; denials land
      // in the catch below as reply.failed with the gateway's appCode.
      for await (const ev of deps.gateway.stream({
        projectId: conversation.projectId,
        userId: opts.userId,
        conversationId: conversation.id,
        source: 'chat',
        model,
        system,
        messages: history,
        maxOutputTokens,
        signal,
      })) {
        if (ev.type === 'delta') {
          text += ev.text;
          pending += ev.text;
          // A failed publish surfaces at the next awaited flush; the timer must not leave an
          // unhandled rejection behind.
          flushTimer ??= setTimeout(() => flush().catch(() => {}), DELTA_COALESCE_MS);
        } else if (ev.type === 'done') {
          usage = ev.usage;
        }
      }
      await flush();
      await progress.stop();
      const [row] = await deps.db
        .update(messages)
        .set({
          content: text,
          status: 'complete',
          inputTokens: usage.inputTokens,
          outputTokens: usage.outputTokens,
          citations,
          completedAt: new Date(),
          heartbeatAt: null,
        })
        // Only a reply still streaming: one a sweeper already failed stays failed.
        .where(and(eq(messages.id, replyId), eq(messages.status, 'streaming')))
        .returning();
      if (row)
        await publish(conversation.id, { type: 'reply.completed', message: toMessage(row), usage });
    } catch (err) {
      await flush().catch(() => {});
      await progress.stop();
      const shutdown = signal.reason === SHUTDOWN;
      const cancelled = signal.aborted && !shutdown;
      const appCode = shutdown
        ? 'reply.interrupted'
        : cancelled
          ? 'reply.cancelled'
          : err instanceof ModelError || err instanceof AppError
            ? err.code
            : 'reply.failed';
      const message = shutdown
        ? 'The server restarted while writing this reply; send the message again'
        : cancelled
          ? 'The reply was cancelled'
          : err instanceof ModelError || err instanceof AppError
            ? err.message
            : 'The reply failed';
      if (!(err instanceof ModelError || err instanceof AppError)) {
        deps.log.error({ err, replyId }, 'reply failed');
      }
      await finishFailed({
        conversationId: conversation.id,
        replyId,
        text,
        appCode,
        message,
        cancelled,
      });
    } finally {
      await progress.stop();
      if (flushTimer) clearTimeout(flushTimer);
    }
  }

  /** Stores the partial text and the failure, then tells subscribers; once per reply. */
  async function finishFailed(opts: {
    conversationId: string;
    replyId: string;
    text: string | null;
    appCode: string;
    message: string;
    cancelled: boolean;
  }): Promise<boolean> {
    return deps.db.transaction(async (tx) => {
      const [row] = await tx
        .update(messages)
        .set({
          ...(opts.text === null ? {} : { content: opts.text }),
          status: opts.cancelled ? 'cancelled' : 'failed',
          errorCode: opts.appCode,
          completedAt: new Date(),
          heartbeatAt: null,
        })
        .where(and(eq(messages.id, opts.replyId), eq(messages.status, 'streaming')))
        .returning({ id: messages.id });
      if (row) {
        await publish(
          opts.conversationId,
          {
            type: 'reply.failed',
            replyId: opts.replyId,
            appCode: opts.appCode,
            message: opts.message,
          },
          tx,
        );
      }
      return row !== undefined;
    });
  }

  return {
    CANCEL_CHANNEL,
    /** Starts streaming a reply whose row (status 'streaming') already exists. */
    start(opts: {
      conversation: ConversationRow;
      replyId: string;
      model: string;
      userId: string | null;
    }) {
      const abort = new AbortController();
      const done = run({ ...opts, signal: abort.signal })
        .catch((err: unknown) =>
          deps.log.error({ err, replyId: opts.replyId }, 'reply runner crashed'),
        )
        .finally(() => inFlight.delete(opts.replyId));
      inFlight.set(opts.replyId, { abort, done });
    },

    /** Cancels wherever the reply runs: here directly, elsewhere through NOTIFY. */
    async cancel(replyId: string) {
      const local = inFlight.get(replyId);
      if (local) local.abort.abort();
      else await deps.db.execute(sql`select pg_notify(${CANCEL_CHANNEL}, ${replyId})`);
    },

    /**
     * Fails replies left streaming by a process that died (stale heartbeat), keeping the
     * text its last progress flush stored; returns how many it failed.
     */
    async sweep(staleMs = STALE_REPLY_MS): Promise<number> {
      const stale = await deps.db
        .select({
          id: messages.id,
          conversationId: messages.conversationId,
          content: messages.content,
        })
        .from(messages)
        .where(
          and(
            eq(messages.status, 'streaming'),
            lt(messages.heartbeatAt, new Date(Date.now() - staleMs)),
          ),
        );
      // Counts what was failed here: it used to return stale.length, which also counted
      // replies still running in this process (skipped) and ones another process's sweep
      // failed first.
      let failed = 0;
      for (const r of stale) {
        if (inFlight.has(r.id)) continue;
        const done = await finishFailed({
          conversationId: r.conversationId,
          replyId: r.id,
          text: null,
          appCode: 'reply.interrupted',
          message: 'The server stopped while writing this reply; send the message again',
          cancelled: false,
        });
        if (done) failed++;
      }
      return failed;
    },

    get inFlight() {
      return inFlight.size;
    },

    /** Cancels what runs here and waits for each to store its outcome. */
    async close() {
      await unlisten();
      const running = [...inFlight.values()];
      for (const r of running) r.abort.abort(SHUTDOWN);
      await Promise.allSettled(running.map((r) => r.done));
    },
  };
}

export type ReplyRunner = Awaited<ReturnType<typeof createReplyRunner>>;
