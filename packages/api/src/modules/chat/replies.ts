import type { Usage } from '../../ai/provider';
import type { ModelRegistry } from '../../ai/registry';
import type { DatabaseHandle, Db } from '../../db/client';
import type { EventBus } from '../../events/bus';
import { classifyFailure } from '../../lib/failure';
import type { Logger } from '../../lib/logger';
import { retryWhileUnavailable } from '../../lib/unavailable';
import { createWorker } from '../../lib/worker';
import type { Gateway } from '../gateway/gateway';
import { conversationTopic } from './chat.dto';
import type { ReplyFailureCode } from './chat.errors';
import type { ConversationRow, MessageRow } from './chat.table';
import { fitHistory } from './context-window';
import { type ReplyProgress, trackReplyProgress } from './reply-progress';
import { buildReplyPrompt, type PromptRow } from './reply-prompt';
import { completeReply, finishFailed, type Publish, staleReplies } from './reply-store';

export type { ReplyFailureCode };

const CANCEL_CHANNEL = 'smartspace_reply_cancel';
/** Deltas arriving within this window go out as one event: fewer rows, same text. */
const DELTA_COALESCE_MS = 25;
/** A streaming reply whose heartbeat is older than this lost its process. */
export const STALE_REPLY_MS = 30_000;
/** How long `stop` waits for a cancelled reply here to store its outcome. */
const STOP_WAIT_MS = 5_000;

export interface ReplyRunnerDeps {
  db: Db;
  bus: EventBus;
  models: ModelRegistry;
  gateway: Gateway;
  log: Logger;
  maxOutputTokens: number;
  /** Replies in conversations with an agent are runs: the runner executes and cancels them. */
  runs: AgentReplies;
}

export interface AgentReplies {
  /** Looks for queued runs of the project now (a reply's run was just recorded). */
  kick(projectId: string): void;
  /** Cancels the run writing this reply; false when no run writes it (a plain reply). */
  cancelReply(replyId: string): Promise<boolean>;
}

interface ReplyJob {
  conversation: ConversationRow;
  /** The streaming reply's row as inserted. */
  reply: MessageRow;
  /** Its conversation's messages (its question last) when read already; else read here. */
  history?: PromptRow[] | undefined;
  model: string;
  userId: string | null;
  /** The API key that sent the message, if one did: the gateway counts the call against it. */
  keyId: string | null;
}

/**
 * Runs assistant replies in the background of the process that accepted `chat.send`:
 * streams from the model, publishes deltas to the event log, keeps the row's text and
 * heartbeat current (reply-progress.ts), stores the outcome. Cancels reach the owning
 * process through NOTIFY; a sweeper fails replies whose process died, so none stays
 * "streaming" forever.
 */
export async function createReplyRunner(handle: DatabaseHandle, deps: ReplyRunnerDeps) {
  const worker = await createWorker(handle, {
    db: deps.db,
    log: deps.log,
    cancelChannel: CANCEL_CHANNEL,
    idField: 'replyId',
    crashMessage: 'reply runner crashed',
  });
  const publish: Publish = (conversationId, events, db = deps.db) =>
    deps.bus.publishMany({
      topic: conversationTopic(conversationId),
      events: events.map(({ type, ...payload }) => ({ type, payload })),
      db,
    });

  // Settles when a reply running here has stored its outcome and published its last event.
  const finished = new Map<string, Promise<void>>();

  return {
    CANCEL_CHANNEL,
    /** Starts streaming a reply whose row (status 'streaming') already exists. */
    start(job: ReplyJob) {
      let settle = () => {};
      const replyId = job.reply.id;
      finished.set(replyId, new Promise<void>((resolve) => (settle = resolve)));
      worker.start(
        replyId,
        (signal) => streamReply(deps, publish, job, signal),
        () => {
          finished.delete(replyId);
          settle();
        },
      );
    },

    /** Starts the run recorded for a reply in a conversation with an agent. */
    startRun: (projectId: string) => deps.runs.kick(projectId),

    /**
     * Cancels wherever the reply runs: here directly, elsewhere through NOTIFY; a reply an
     * agent's run writes, by cancelling the run.
     */
    async cancel(replyId: string): Promise<void> {
      if (await deps.runs.cancelReply(replyId)) return;
      await worker.cancel(replyId);
    },

    /**
     * Cancels, and when the reply runs here waits (at most STOP_WAIT_MS) until its last
     * delta and its outcome are written, so that nothing of it lands after what the caller
     * does next. One running elsewhere (or a run's) is cancelled without waiting.
     */
    async stop(replyId: string): Promise<void> {
      if (await deps.runs.cancelReply(replyId)) return;
      await worker.cancel(replyId);
      const done = finished.get(replyId);
      if (!done) return;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, STOP_WAIT_MS);
      });
      await Promise.race([done, timeout]).finally(() => clearTimeout(timer));
    },

    /**
     * Fails replies left streaming by a process that died (stale heartbeat), keeping the
     * text its last progress flush stored; returns how many it failed (not those skipped
     * because they run here, nor those another process's sweep failed first).
     */
    async sweep(staleMs = STALE_REPLY_MS): Promise<number> {
      const stale = await staleReplies(deps.db, staleMs);
      return worker.sweep(stale, (r) =>
        finishFailed(deps.db, publish, {
          conversationId: r.conversationId,
          replyId: r.id,
          text: null,
          appCode: 'reply.interrupted',
          message: 'The server stopped while writing this reply; send the message again',
          cancelled: false,
        }),
      );
    },

    get inFlight() {
      return worker.size;
    },

    /** Cancels what runs here and waits for each to store its outcome. */
    close: () => worker.close(),
  };
}

export type ReplyRunner = Awaited<ReturnType<typeof createReplyRunner>>;

/**
 * Sends deltas out in batches of DELTA_COALESCE_MS, chained so they reach the event log in
 * order and all before the final event. Only text that reached the event log is handed to
 * `progress` to be stored. The reply's last write takes what is still pending (`take`), so
 * the last deltas go out in the same transaction as the outcome.
 */
function coalesceDeltas(send: (text: string) => Promise<unknown>, progress: ReplyProgress) {
  let pending = '';
  let timer: NodeJS.Timeout | null = null;
  let publishing: Promise<unknown> = Promise.resolve();
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (!pending) return publishing;
    const chunk = pending;
    pending = '';
    publishing = publishing.then(() => send(chunk)).then(() => progress.published(chunk));
    return publishing;
  };
  return {
    push(text: string) {
      pending += text;
      // A failed publish surfaces at the next awaited flush; the timer must not leave an
      // unhandled rejection behind.
      timer ??= setTimeout(() => flush().catch(() => {}), DELTA_COALESCE_MS);
    },
    /**
     * Stops batching, waits for the publish in flight (rethrowing its failure unless
     * `settled`) and returns the text not yet published.
     */
    async take(settled = false): Promise<string> {
      if (timer) clearTimeout(timer);
      timer = null;
      await (settled ? publishing.catch(() => {}) : publishing);
      const rest = pending;
      pending = '';
      return rest;
    },
    dispose() {
      if (timer) clearTimeout(timer);
    },
  };
}

async function streamReply(
  deps: ReplyRunnerDeps,
  publish: Publish,
  job: ReplyJob,
  signal: AbortSignal,
) {
  const { conversation, reply, model } = job;
  const replyId = reply.id;
  const info = deps.models.get(model);
  let text = '';
  // Stopped before each final write: a flush still in flight must not land after it.
  const progress = trackReplyProgress({ db: deps.db, replyId, log: deps.log });
  const deltas = coalesceDeltas(
    (chunk) => publish(conversation.id, [{ type: 'reply.delta', replyId, text: chunk }]),
    progress,
  );
  // reply.started went out with the transaction that stored the reply's row.
  try {
    const { turns, system, citations } = await buildReplyPrompt({
      db: deps.db,
      conversation,
      replyId,
      rows: job.history,
    });
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
      userId: job.userId,
      keyId: job.keyId,
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
        deltas.push(ev.text);
      } else if (ev.type === 'done') {
        usage = ev.usage;
      }
    }
    const rest = await deltas.take();
    await progress.stop();
    await lastWrite(deps, replyId, () =>
      completeReply(deps.db, deps.bus, {
        reply,
        text,
        deltas: rest,
        usage,
        citations,
      }),
    );
  } catch (err) {
    // What a failed publish left unsent goes out with the failure.
    const rest = await deltas.take(true);
    await progress.stop();
    await failReply(
      deps,
      publish,
      { conversationId: conversation.id, replyId, text, deltas: rest },
      err,
      signal,
    );
  } finally {
    await progress.stop();
    deltas.dispose();
  }
}

async function failReply(
  deps: ReplyRunnerDeps,
  publish: Publish,
  reply: { conversationId: string; replyId: string; text: string; deltas: string },
  err: unknown,
  signal: AbortSignal,
) {
  const failure = classifyFailure<ReplyFailureCode>(err, signal, {
    appCode: 'reply.failed',
    message: 'The reply failed',
  });
  if (failure.unexpected) deps.log.error({ err, replyId: reply.replyId }, 'reply failed');
  const outcome =
    failure.kind === 'shutdown'
      ? {
          appCode: 'reply.interrupted' as const,
          message: 'The server restarted while writing this reply; send the message again',
        }
      : failure.kind === 'cancelled'
        ? { appCode: 'reply.cancelled' as const, message: 'The reply was cancelled' }
        : failure;
  await lastWrite(deps, reply.replyId, () =>
    finishFailed(deps.db, publish, {
      ...reply,
      appCode: outcome.appCode,
      message: outcome.message,
      cancelled: failure.kind === 'cancelled',
    }),
  );
}

/**
 * A reply's outcome, written through a database outage: retried until the database answers
 * again, for as long as the reply would take to look stale to a sweeper. Without it, a
 * reply finished during a short outage would lose its text and keep its conversation busy
 * (chat.reply_in_progress) until swept.
 */
function lastWrite(deps: ReplyRunnerDeps, replyId: string, write: () => Promise<unknown>) {
  return retryWhileUnavailable(write, {
    withinMs: STALE_REPLY_MS,
    onRetry: (err, attempt) =>
      attempt === 1 &&
      deps.log.warn({ err, replyId }, "database unavailable; retrying the reply's outcome"),
  });
}
