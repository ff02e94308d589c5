import { createInterface } from 'node:readline';
import type { ChatEvent, Message, SmartSpaceClient } from '@smartspace/client';
import type { Command } from 'commander';
import pc from 'picocolors';
import { type Ctx, resolveProject, withClient } from '../context';
import { CliError, describeError, EXIT_INTERRUPTED } from '../errors';
import { note, printJson } from '../output';

interface ChatOptions {
  conversation?: string;
  model?: string;
  message?: string;
  title?: string;
}

interface ReplyOutcome {
  replyId: string;
  text: string;
  message: Message | null;
  usage: { inputTokens: number; outputTokens: number } | null;
  cancelled: boolean;
}

/** The reply an event is about; null for messages and conversation changes. */
function replyIdOf(e: ChatEvent): string | null {
  switch (e.type) {
    case 'reply.started':
    case 'reply.delta':
    case 'reply.failed':
      return e.replyId;
    case 'reply.completed':
      return e.message.id;
    default:
      return null;
  }
}

/**
 * One live subscription to the conversation for the whole session. Events are kept per
 * reply until someone waits for that reply: the first deltas may arrive before `send`
 * returns the reply's id.
 */
class ConversationFeed {
  private readonly backlog = new Map<string, ChatEvent[]>();
  private listener: { replyId: string; on: (e: ChatEvent) => void } | null = null;
  private failure: ((err: unknown) => void) | null = null;
  private sub: { unsubscribe(): void } | null = null;

  constructor(
    private readonly client: SmartSpaceClient,
    private readonly conversationId: string,
  ) {}

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      let started = false;
      this.sub = this.client.chat.onEvent.subscribe(
        { conversationId: this.conversationId, lastEventId: null },
        {
          onStarted: () => {
            started = true;
            resolve();
          },
          onData: (tracked) => this.dispatch(tracked.data as ChatEvent),
          onError: (err) => {
            if (!started) reject(err);
            else this.failure?.(err);
          },
        },
      );
    });
  }

  private dispatch(e: ChatEvent): void {
    const id = replyIdOf(e);
    if (!id) return;
    if (this.listener?.replyId === id) this.listener.on(e);
    else this.backlog.set(id, [...(this.backlog.get(id) ?? []), e]);
  }

  /** Streams the reply's text to `onText` until it completes, fails or is cancelled. */
  follow(replyId: string, onText: (text: string) => void): Promise<ReplyOutcome> {
    return new Promise((resolve, reject) => {
      const outcome: ReplyOutcome = {
        replyId,
        text: '',
        message: null,
        usage: null,
        cancelled: false,
      };
      const done = () => {
        this.listener = null;
        this.failure = null;
      };
      const on = (e: ChatEvent) => {
        if (e.type === 'reply.delta') {
          outcome.text += e.text;
          onText(e.text);
        } else if (e.type === 'reply.completed') {
          outcome.message = e.message;
          outcome.usage = e.usage;
          done();
          resolve(outcome);
        } else if (e.type === 'reply.failed') {
          done();
          if (e.appCode === 'reply.cancelled') resolve({ ...outcome, cancelled: true });
          else reject(new CliError(e.message, e.appCode));
        }
      };
      this.failure = (err) => {
        done();
        reject(err);
      };
      this.listener = { replyId, on };
      const early = this.backlog.get(replyId) ?? [];
      this.backlog.delete(replyId);
      for (const e of early) on(e);
    });
  }

  stop(): void {
    this.sub?.unsubscribe();
  }
}

async function openConversation(ctx: Ctx, opts: ChatOptions): Promise<string> {
  if (opts.conversation) return opts.conversation;
  const projectId = await resolveProject(ctx, ctx.opts.project);
  const conversation = await ctx.client.chat.conversations.create.mutate({
    projectId,
    model: opts.model,
    title: opts.title,
  });
  return conversation.id;
}

/** Registers a Ctrl-C handler for the duration of a reply; returns its removal. */
type InterruptSource = (handler: () => void) => () => void;

const processInterrupts: InterruptSource = (handler) => {
  process.on('SIGINT', handler);
  return () => process.off('SIGINT', handler);
};

/** Sends one message and streams its reply; Ctrl-C meanwhile cancels the reply only. */
async function ask(
  ctx: Ctx,
  feed: ConversationFeed,
  conversationId: string,
  content: string,
  opts: { model?: string; stream: boolean; onInterrupt: InterruptSource },
): Promise<ReplyOutcome> {
  const { replyId } = await ctx.client.chat.send.mutate({
    conversationId,
    content,
    model: opts.model,
  });
  let cancelling = false;
  const onSigint = () => {
    // A second Ctrl-C does not wait for the server: leave now, the cancel is on its way.
    if (cancelling) process.exit(EXIT_INTERRUPTED);
    cancelling = true;
    void ctx.client.chat.cancel.mutate({ replyId }).catch((err: unknown) => {
      note(pc.red(`Could not cancel: ${describeError(err).message}`));
    });
  };
  const off = opts.onInterrupt(onSigint);
  try {
    const outcome = await feed.follow(replyId, (text) => {
      if (opts.stream) process.stdout.write(text);
    });
    if (opts.stream) process.stdout.write('\n');
    if (outcome.cancelled && opts.stream) note(pc.yellow('(reply stopped)'));
    return outcome;
  } finally {
    off();
  }
}

async function interactive(ctx: Ctx, feed: ConversationFeed, id: string, opts: ChatOptions) {
  note(pc.dim(`Conversation ${id}. Ctrl-C stops a reply; Ctrl-C or Ctrl-D at the prompt exits.`));
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: true });
  const prompt = pc.cyan('you › ');
  // Ctrl-D or a closed terminal may come while a reply streams, when no prompt listens:
  // remember it, so the session ends instead of waiting for a line that cannot come.
  let closed = false;
  rl.once('close', () => {
    closed = true;
  });
  // At the prompt, Ctrl-C (readline's SIGINT) and Ctrl-D (close) both end the session.
  const nextLine = () =>
    new Promise<string | null>((resolve) => {
      if (closed) {
        resolve(null);
        return;
      }
      const onLine = (line: string) => finish(line);
      const onEnd = () => finish(null);
      const finish = (v: string | null) => {
        rl.off('line', onLine);
        rl.off('close', onEnd);
        rl.off('SIGINT', onEnd);
        resolve(v);
      };
      rl.on('line', onLine);
      rl.once('close', onEnd);
      rl.once('SIGINT', onEnd);
      rl.setPrompt(prompt);
      rl.prompt();
    });
  try {
    for (;;) {
      const line = await nextLine();
      if (line === null) break;
      if (!line.trim()) continue;
      // The terminal is in raw mode: Ctrl-C reaches readline as a key, not as a signal.
      // Ctrl-D or the terminal going away stops the reply too; the session then ends.
      const onInterrupt: InterruptSource = (handler) => {
        rl.on('SIGINT', handler);
        rl.on('close', handler);
        return () => {
          rl.off('SIGINT', handler);
          rl.off('close', handler);
        };
      };
      process.stdout.write(pc.magenta('ai  › '));
      try {
        await ask(ctx, feed, id, line, { model: opts.model, stream: true, onInterrupt });
      } catch (err) {
        const d = describeError(err);
        process.stdout.write('\n');
        note(`${pc.red('Error:')} ${d.message}${d.appCode ? pc.dim(` [${d.appCode}]`) : ''}`);
      }
    }
  } finally {
    rl.close();
    process.stdout.write('\n');
  }
}

async function chat(opts: ChatOptions, cmd: Command): Promise<void> {
  await withClient(cmd, async (ctx) => {
    const conversationId = await openConversation(ctx, opts);
    const feed = new ConversationFeed(ctx.client, conversationId);
    await feed.start();
    try {
      if (opts.message !== undefined) {
        const outcome = await ask(ctx, feed, conversationId, opts.message, {
          model: opts.model,
          stream: !ctx.opts.json,
          onInterrupt: processInterrupts,
        });
        if (ctx.opts.json) {
          printJson({
            conversationId,
            replyId: outcome.replyId,
            reply: outcome.text,
            cancelled: outcome.cancelled,
            usage: outcome.usage,
            model: outcome.message?.model ?? null,
          });
        }
        if (outcome.cancelled) process.exitCode = 1;
        return;
      }
      if (!process.stdin.isTTY) {
        throw new CliError('Interactive chat needs a terminal: use `chat -m "question"`.');
      }
      await interactive(ctx, feed, conversationId, opts);
    } finally {
      feed.stop();
    }
  });
}

export function registerChat(program: Command): void {
  program
    .command('chat')
    .description('chat with a model; interactive, or one question with -m')
    .option('-c, --conversation <id>', 'continue a conversation (default: start a new one)')
    .option('--model <model>', 'model to answer with (default: the server default)')
    .option('-m, --message <text>', 'ask one question, print the reply and exit')
    .option('--title <title>', 'title of a new conversation')
    .action((opts: ChatOptions, cmd: Command) => chat(opts, cmd));
}
