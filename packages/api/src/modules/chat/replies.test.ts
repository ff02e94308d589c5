import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FakeAnthropic, startFakeAnthropic } from '../../ai/testing/fake-anthropic';
import { createApi, createCaller, type Session } from '../../index';
import { createTestApi, type TestApi, testConfig } from '../../testing';
import { addDocument } from '../documents/documents.service';
import type { ChatEvent } from './chat.dto';
import { messages } from './chat.table';
import { PARTIAL_FLUSH_MS, trackReplyProgress } from './reply-progress';

/**
 * Replies through the real Anthropic SDK, against the fake Messages API server: what is
 * sent upstream, and what upstream failures, cancellation and grounding turn into.
 */

let fake: FakeAnthropic;
let t: TestApi;
let owner: Session;
let projectId: string;
beforeAll(async () => {
  fake = await startFakeAnthropic();
  t = await createTestApi({
    ANTHROPIC_API_KEY: fake.apiKey,
    ANTHROPIC_BASE_URL: fake.url,
    // One retry: enough to see the SDK retry, few enough to exhaust quickly.
    ANTHROPIC_MAX_RETRIES: '1',
  });
  owner = await t.signUp('Owner');
  projectId = (await t.caller(owner.accessToken).projects.create({ name: 'Claude' })).id;
});
afterAll(async () => {
  await t.close();
  await fake.close();
});
beforeEach(() => fake.reset());

const MODEL = 'claude-sonnet-5-5';
const c = () => t.caller(owner.accessToken);

/** Collects a conversation's events from its first one (lastEventId 0: nothing is missed). */
async function subscribe(conversationId: string) {
  const ac = new AbortController();
  const caller = createCaller(
    t.api.createContext({ token: owner.accessToken, ip: '127.0.0.1', requestId: randomUUID() }),
    { signal: ac.signal },
  );
  const stream = (await caller.chat.onEvent({ conversationId, lastEventId: '0' })) as AsyncIterable<
    [string, ChatEvent]
  >;
  const events: ChatEvent[] = [];
  const done = (async () => {
    for await (const [, event] of stream) events.push(event);
  })();
  return {
    events,
    async until(pred: (e: ChatEvent) => boolean): Promise<ChatEvent> {
      await expect.poll(() => events.some(pred), { timeout: 5_000, interval: 5 }).toBe(true);
      return events.find(pred) as ChatEvent;
    },
    async close() {
      ac.abort();
      await done;
    },
  };
}

const endOf = (replyId: string) => (e: ChatEvent) =>
  (e.type === 'reply.completed' && e.message.id === replyId) ||
  (e.type === 'reply.failed' && e.replyId === replyId);
const deltaText = (events: ChatEvent[], replyId: string) =>
  events.map((e) => (e.type === 'reply.delta' && e.replyId === replyId ? e.text : '')).join('');
async function stored(replyId: string) {
  const [row] = await t.api.deps.db.select().from(messages).where(eq(messages.id, replyId));
  if (!row) throw new Error(`no message ${replyId}`);
  return row;
}

/** Sends and waits for the reply's last event; returns it with the reply's deltas. */
async function ask(conversationId: string, content: string) {
  const sub = await subscribe(conversationId);
  const sent = await c().chat.send({ conversationId, content });
  const end = await sub.until(endOf(sent.replyId));
  const deltas = sub.events.filter((e) => e.type === 'reply.delta' && e.replyId === sent.replyId);
  await sub.close();
  return { ...sent, end, deltas, text: deltaText(sub.events, sent.replyId) };
}

describe('through the real SDK', () => {
  it('streams the reply and sends model, system prompt, history and max_tokens', async () => {
    const conv = await c().chat.conversations.create({ projectId, systemPrompt: 'Be terse.' });
    fake.script(
      { kind: 'reply', chunks: ['Paris', '.'] },
      {
        kind: 'reply',
        chunks: ['Rome', ', of', ' course.'],
        chunkDelayMs: 50,
        inputTokens: 42,
        outputTokens: 7,
      },
    );
    const first = await ask(conv.id, 'Capital of France?');
    expect(first.end.type).toBe('reply.completed');
    const second = await ask(conv.id, 'And of Italy?');

    // Chunks far enough apart arrive as separate deltas, and join to the stored reply.
    expect(second.deltas.length).toBeGreaterThanOrEqual(2);
    expect(second.text).toBe('Rome, of course.');
    expect(second.end).toMatchObject({
      type: 'reply.completed',
      usage: { inputTokens: 42, outputTokens: 7 },
      message: {
        id: second.replyId,
        content: 'Rome, of course.',
        model: MODEL,
        status: 'complete',
      },
    });
    const row = await stored(second.replyId);
    expect(row).toMatchObject({ content: 'Rome, of course.', inputTokens: 42, outputTokens: 7 });

    expect(fake.requests).toHaveLength(2);
    const req = fake.requests[1];
    expect(req).toMatchObject({
      model: MODEL,
      system: 'Be terse.',
      max_tokens: 4096,
      stream: true,
    });
    expect(req?.messages).toEqual([
      { role: 'user', content: 'Capital of France?' },
      { role: 'assistant', content: 'Paris.' },
      { role: 'user', content: 'And of Italy?' },
    ]);
  });

  it('uses a default system prompt when the conversation has none', async () => {
    const r = await ask((await c().chat.conversations.create({ projectId })).id, 'Hello?');
    expect(r.end).toMatchObject({ message: { content: 'Hello from fake Claude.' } });
    expect(fake.requests[0]?.system).toEqual(expect.stringMatching(/assistant/));
  });
});

describe('upstream failures', () => {
  it('fails as model.overloaded once 529s exhaust the retries', async () => {
    const conv = await c().chat.conversations.create({ projectId });
    const overloaded = { kind: 'error', status: 529, retryAfterMs: 1 } as const;
    fake.script(overloaded, overloaded);
    const r = await ask(conv.id, 'Anyone there?');
    expect(r.end).toMatchObject({
      type: 'reply.failed',
      replyId: r.replyId,
      appCode: 'model.overloaded',
    });
    expect(fake.requests.map((x) => x.retryCount)).toEqual([0, 1]);
    expect(await stored(r.replyId)).toMatchObject({
      status: 'failed',
      errorCode: 'model.overloaded',
      content: '',
    });
  });

  it('keeps exactly the streamed text when the stream is cut', async () => {
    const conv = await c().chat.conversations.create({ projectId });
    fake.script({ kind: 'cut', chunks: ['Half', ' an answer'] });
    const r = await ask(conv.id, 'Tell me everything');
    expect(r.end).toMatchObject({ type: 'reply.failed', appCode: 'model.stream_interrupted' });
    expect(r.text).toBe('Half an answer');
    expect(await stored(r.replyId)).toMatchObject({
      status: 'failed',
      errorCode: 'model.stream_interrupted',
      content: r.text,
    });
    // Text had flowed: nothing is retried.
    expect(fake.requests).toHaveLength(1);
  });

  it('completes when the SDK retries a 429', async () => {
    const conv = await c().chat.conversations.create({ projectId });
    fake.script(
      { kind: 'error', status: 429, retryAfterMs: 1 },
      { kind: 'reply', chunks: ['Second', ' time'] },
    );
    const r = await ask(conv.id, 'Busy?');
    expect(r.end).toMatchObject({ type: 'reply.completed', message: { content: 'Second time' } });
    expect(fake.requests.map((x) => x.retryCount)).toEqual([0, 1]);
    expect((await stored(r.replyId)).status).toBe('complete');
  });
});

describe('cancel', () => {
  it('stops the reply, keeps its text, closes the upstream connection; idempotent', async () => {
    const conv = await c().chat.conversations.create({ projectId });
    fake.script({ kind: 'hang', chunks: ['Partial', ' text'] });
    const sub = await subscribe(conv.id);
    const { replyId } = await c().chat.send({ conversationId: conv.id, content: 'Go on' });
    await expect.poll(() => deltaText(sub.events, replyId)).toBe('Partial text');

    const cancelledAt = Date.now();
    expect(await c().chat.cancel({ replyId })).toEqual({ ok: true });
    expect(await sub.until(endOf(replyId))).toEqual({
      type: 'reply.failed',
      replyId,
      appCode: 'reply.cancelled',
      message: expect.any(String),
    });
    const upstream = await fake.requests[0]?.closed;
    expect(upstream?.finished).toBe(false);
    expect((upstream?.at ?? Number.POSITIVE_INFINITY) - cancelledAt).toBeLessThan(1_000);
    expect(await stored(replyId)).toMatchObject({
      status: 'cancelled',
      errorCode: 'reply.cancelled',
      content: 'Partial text',
    });

    // Again, and on a completed reply: ok, and nothing changes or is announced.
    expect(await c().chat.cancel({ replyId })).toEqual({ ok: true });
    const next = await c().chat.send({ conversationId: conv.id, content: 'Once more' });
    await sub.until(endOf(next.replyId));
    expect(await c().chat.cancel({ replyId: next.replyId })).toEqual({ ok: true });
    expect(await stored(next.replyId)).toMatchObject({ status: 'complete', errorCode: null });
    expect(await stored(replyId)).toMatchObject({ status: 'cancelled', content: 'Partial text' });
    const failedIdx = sub.events.findIndex(endOf(replyId));
    expect(sub.events[failedIdx + 1]).toEqual({ type: 'message.created', message: next.message });
    expect(sub.events.filter((e) => e.type === 'reply.failed')).toHaveLength(1);
    // A cancelled reply's partial text is for people, not the model: it is left out upstream.
    expect(fake.requests[1]?.messages).toEqual([
      { role: 'user', content: 'Go on' },
      { role: 'user', content: 'Once more' },
    ]);
    await sub.close();
  });

  it('is never swept while streaming here; a cancel through another instance reaches it', async () => {
    const conv = await c().chat.conversations.create({ projectId });
    fake.script({ kind: 'hang', chunks: ['Still', ' going'] });
    const sub = await subscribe(conv.id);
    const { replyId } = await c().chat.send({ conversationId: conv.id, content: 'Hold on' });
    await expect.poll(() => deltaText(sub.events, replyId)).toBe('Still going');
    // A second instance on the same database (its start-up sweep sees a fresh heartbeat).
    const other = await createApi({
      config: testConfig(),
      database: t.api.database,
      migrate: false,
    });
    try {
      // A late heartbeat (a blocked event loop, say) does not make a reply running here dead.
      const late = { heartbeatAt: new Date(0) };
      await t.api.deps.db.update(messages).set(late).where(eq(messages.id, replyId));
      expect(await t.api.deps.replies.sweep()).toBe(0);
      expect((await stored(replyId)).status).toBe('streaming');

      const ctx = other.createContext({ token: owner.accessToken, ip: '::1', requestId: 'r' });
      expect(await createCaller(ctx).chat.cancel({ replyId })).toEqual({ ok: true });
      expect(await sub.until(endOf(replyId))).toMatchObject({ appCode: 'reply.cancelled' });
      expect(await stored(replyId)).toMatchObject({ status: 'cancelled', content: 'Still going' });
      expect((await fake.requests[0]?.closed)?.finished).toBe(false);
    } finally {
      await other.close();
      await sub.close();
    }
  });
});

describe('grounded conversations', () => {
  const REFUND =
    'Refunds are available within 30 days of purchase. Customers request one from the billing page, and the money returns to the original card within five business days.';
  const SHIPPING =
    'Orders ship from the warehouse in Rotterdam. Delivery takes two to four days inside the European Union, longer for islands and remote regions.';
  // Paragraphs this long land in separate passages (see splitPassages).
  const refundPassage = Array(4).fill(REFUND).join(' ');
  const shippingPassage = Array(4).fill(SHIPPING).join(' ');

  it('answers from the matching passage of this project, and cites it', async () => {
    const db = t.api.deps.db;
    const doc = await addDocument({
      db,
      projectId,
      name: 'Customer policy',
      content: `${refundPassage}\n\n${shippingPassage}\n\nQuestions: write to support.`,
    });
    expect(doc.passages).toBe(2);
    await addDocument({
      db,
      projectId,
      name: 'Office plants',
      content: 'Water the ferns on Mondays.\n\nThe cactus needs sun, not water.',
    });
    const other = await c().projects.create({ name: 'Other tenant' });
    const SECRET = 'Refunds for this other purchase are handled by the secret desk.';
    await addDocument({ db, projectId: other.id, name: 'Other refunds', content: SECRET });

    const conv = await c().chat.conversations.create({
      projectId,
      grounded: true,
      systemPrompt: 'You answer policy questions.',
    });
    const r = await ask(conv.id, 'How do I request a refund for my purchase?');
    expect(r.end).toMatchObject({
      type: 'reply.completed',
      message: {
        citations: [
          { fileId: null, name: 'Customer policy', excerpt: refundPassage.slice(0, 300) },
        ],
      },
    });
    expect((await stored(r.replyId)).citations).toEqual([
      { fileId: null, name: 'Customer policy', excerpt: refundPassage.slice(0, 300) },
    ]);
    const system = String(fake.requests[0]?.system);
    expect(system.startsWith('You answer policy questions.')).toBe(true);
    expect(system).toContain(`name="Customer policy">\n${refundPassage}\n</document>`);
    expect(system).not.toContain('Rotterdam');
    expect(system).not.toContain('ferns');
    expect(system).not.toContain('secret desk');

    // A question no document touches: no passages, no citations, and the model is told so.
    const none = await ask(conv.id, 'Which zebras live in Kenya?');
    expect(none.end).toMatchObject({ type: 'reply.completed', message: { citations: [] } });
    const system2 = String(fake.requests[1]?.system);
    expect(system2).toContain('No project document matches');
    expect(system2).not.toContain('<document');
  });
});

// A process killed mid-reply must not leave the reply empty.
describe('the partial text while a reply streams', () => {
  it('is stored as it streams: it advances, in whole published deltas', async () => {
    const conv = await c().chat.conversations.create({ projectId });
    const chunks = Array.from({ length: 16 }, (_, i) => `part${i} `);
    fake.script({ kind: 'reply', chunks, chunkDelayMs: 120 });
    const sub = await subscribe(conv.id);
    const { replyId } = await c().chat.send({ conversationId: conv.id, content: 'Slowly' });
    // What a reader of the conversation gets mid-stream, sampled until the reply ends.
    const samples: string[] = [];
    for (;;) {
      const { items } = await c().chat.messages.list({ conversationId: conv.id });
      const reply = items.find((m) => m.id === replyId);
      if (reply?.status !== 'streaming') break;
      if (reply.content !== (samples.at(-1) ?? '')) samples.push(reply.content);
      await sleep(20);
    }
    await sub.until(endOf(replyId));
    await sub.close();
    const deltas = sub.events.flatMap((e) =>
      e.type === 'reply.delta' && e.replyId === replyId ? [e.text] : [],
    );
    const published = deltas.map((_, i) => deltas.slice(0, i + 1).join(''));
    expect(published.at(-1)).toBe(chunks.join(''));
    // Several flushes, each longer, each exactly the text of the deltas sent before it.
    expect(samples.length).toBeGreaterThanOrEqual(2);
    for (const [i, sample] of samples.entries()) {
      expect(published).toContain(sample);
      if (i > 0) expect(sample.length).toBeGreaterThan(samples[i - 1]?.length ?? 0);
    }
    expect(await stored(replyId)).toMatchObject({ status: 'complete', content: chunks.join('') });
  });

  it('is stored within a flush interval when the stream stalls', async () => {
    const conv = await c().chat.conversations.create({ projectId });
    fake.script({ kind: 'hang', chunks: ['Stalled', ' halfway'] });
    const { replyId } = await c().chat.send({ conversationId: conv.id, content: 'Go' });
    await expect
      .poll(() => stored(replyId), { timeout: 2 * PARTIAL_FLUSH_MS, interval: 10 })
      .toMatchObject({ status: 'streaming', content: 'Stalled halfway' });
    await c().chat.cancel({ replyId });
    await expect.poll(async () => (await stored(replyId)).status).toBe('cancelled');
    expect((await stored(replyId)).content).toBe('Stalled halfway');
  });
});

describe('progress flushes', () => {
  const log = { error() {}, warn() {}, info() {} };
  async function replyRow(status: 'streaming' | 'complete', content: string) {
    const conv = await c().chat.conversations.create({ projectId });
    const [row] = await t.api.deps.db
      .insert(messages)
      .values({
        conversationId: conv.id,
        role: 'assistant',
        content,
        status,
        heartbeatAt: status === 'streaming' ? new Date() : null,
      })
      .returning({ id: messages.id });
    if (!row) throw new Error('insert returned no row');
    return row.id;
  }

  it('never touch a finished reply: not its text, not its heartbeat', async () => {
    const done = await replyRow('complete', 'The final answer.');
    const late = trackReplyProgress({ db: t.api.deps.db, replyId: done, log, flushMs: 5 });
    late.published('The final');
    await sleep(100);
    await late.stop();
    expect(await stored(done)).toMatchObject({
      status: 'complete',
      content: 'The final answer.',
      heartbeatAt: null,
    });

    // Finished (here cancelled) while its progress is still being flushed.
    const replyId = await replyRow('streaming', '');
    const progress = trackReplyProgress({ db: t.api.deps.db, replyId, log, flushMs: 5 });
    progress.published('Half');
    await expect.poll(async () => (await stored(replyId)).content).toBe('Half');
    await t.api.deps.db
      .update(messages)
      .set({ status: 'cancelled', content: 'Half a reply', heartbeatAt: null })
      .where(eq(messages.id, replyId));
    progress.published(' a reply, and more');
    await sleep(100);
    await progress.stop();
    expect(await stored(replyId)).toMatchObject({
      status: 'cancelled',
      content: 'Half a reply',
      heartbeatAt: null,
    });
  });

  it('stop() waits for the flush in flight, so the final write lands last', async () => {
    const replyId = await replyRow('streaming', '');
    const db = t.api.deps.db;
    let release: () => void = () => {};
    const released = new Promise<void>((r) => {
      release = r;
    });
    // Holds the row (PostgreSQL) or the connection (PGlite): the flush blocks behind it.
    const locked = db.transaction(async (tx) => {
      await tx.select().from(messages).where(eq(messages.id, replyId)).for('update');
      await released;
    });
    await sleep(20);
    const progress = trackReplyProgress({ db, replyId, log, flushMs: 5 });
    progress.published('Partial');
    await sleep(50);
    let stopped = false;
    const stopping = progress.stop().then(() => {
      stopped = true;
    });
    await sleep(50);
    expect(stopped).toBe(false);
    release();
    await locked;
    await stopping;
    // The flush did land, before stop() returned...
    expect((await stored(replyId)).content).toBe('Partial');
    // ...so the final write, issued after, is the one that stays.
    await db
      .update(messages)
      .set({ status: 'complete', content: 'Partial, then whole.', heartbeatAt: null })
      .where(eq(messages.id, replyId));
    await sleep(50);
    expect(await stored(replyId)).toMatchObject({
      status: 'complete',
      content: 'Partial, then whole.',
    });
  });
});
