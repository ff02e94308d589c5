/**
 * The chat bench's child (started by chat.ts): replies to chat.send with mock-echo streaming
 * without pauses, over a fresh test database, timed from the send to the reply.completed
 * event reaching a listener of the conversation's topic (what a subscriber waits for);
 * beside it the same model call made straight to the provider. Sends the report as its one
 * IPC message and drops its database when the parent disconnects.
 */
import { randomUUID } from 'node:crypto';
import { createApi, createCaller, loadConfig } from '@smartspace/api';
import { createTestDatabase } from '@smartspace/api/testing';
import type { ChatReport } from './chat';
import { percentile } from './fanout-protocol';

const SENDS = Number(process.env.BENCH_CHAT_SENDS ?? 200);
const WARMUP = 20;
const QUESTION = 'How long does a reply take beyond the model?';
const TIMEOUT_MS = 10_000;

async function main(): Promise<void> {
  const database = await createTestDatabase();
  const api = await createApi({
    config: loadConfig({
      NODE_ENV: 'production',
      JWT_SECRET: randomUUID() + randomUUID(),
      LOG_LEVEL: 'silent',
      RATE_LIMIT_PER_MINUTE: '0',
      MOCK_MODEL_ENABLED: 'true',
      BILLING_MODE: 'off',
    }),
    database,
    migrate: false,
    mockChunkDelayMs: 0,
  });
  const caller = (token: string | null) =>
    createCaller(api.createContext({ token, ip: '127.0.0.1', requestId: randomUUID() }));
  const session = await caller(null).auth.register({
    email: `chat.bench.${Date.now()}@example.com`,
    password: 'correct horse battery staple',
    name: 'Chat bench',
  });
  const c = caller(session.accessToken);
  const { id: projectId } = await c.projects.create({ name: 'Chat bench' });

  // The model alone: the same prompt straight to the provider, back to back.
  const provider = api.deps.models.provider('mock-echo');
  const direct: number[] = [];
  for (let i = 0; i < SENDS + WARMUP; i++) {
    const t0 = performance.now();
    for await (const _ of provider.stream({
      model: 'mock-echo',
      messages: [{ role: 'user', content: QUESTION }],
      maxOutputTokens: 1024,
    })) {
      // drain
    }
    if (i >= WARMUP) direct.push(performance.now() - t0);
  }

  // A conversation per send keeps every reply's context the same size (one question).
  const replies: number[] = [];
  const sendOnly: number[] = [];
  let failed = 0;
  let firstError: string | null = null;
  for (let i = 0; i < SENDS + WARMUP; i++) {
    const conversation = await c.chat.conversations.create({ projectId, model: 'mock-echo' });
    let done: (type: string) => void = () => {};
    const ended = new Promise<string>((resolve, reject) => {
      done = resolve;
      setTimeout(() => reject(new Error('no reply.completed within 10 s')), TIMEOUT_MS).unref();
    });
    const unlisten = api.deps.bus.listen(`conversation:${conversation.id}`, (ev) => {
      if (ev.type === 'reply.completed' || ev.type === 'reply.failed') done(ev.type);
    });
    try {
      const t0 = performance.now();
      await c.chat.send({ conversationId: conversation.id, content: QUESTION });
      const sent = performance.now();
      const type = await ended;
      const t1 = performance.now();
      if (type !== 'reply.completed') throw new Error(`the reply ended with ${type}`);
      if (i >= WARMUP) {
        replies.push(t1 - t0);
        sendOnly.push(sent - t0);
      }
    } catch (err) {
      failed++;
      firstError ??= (err as Error).message;
    } finally {
      unlisten();
    }
  }

  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
  for (const xs of [direct, replies, sendOnly]) xs.sort((a, b) => a - b);
  const report: ChatReport = {
    type: 'report',
    database:
      database.kind === 'postgres' ? 'PostgreSQL (cloned test database)' : 'PGlite (in memory)',
    sends: replies.length,
    directMeanMs: mean(direct),
    directP50Ms: percentile(direct, 50),
    replyMeanMs: mean(replies),
    replyP50Ms: percentile(replies, 50),
    replyP99Ms: percentile(replies, 99),
    sendP50Ms: percentile(sendOnly, 50),
    failed,
    firstError,
  };
  process.send?.(report);
  await new Promise<void>((resolve) => process.once('disconnect', resolve));
  await api.close();
  await database.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
