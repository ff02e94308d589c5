import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mockTokenCount } from '../../ai/mock';
import { eventRetention } from '../../events/events.table';
import type { Session } from '../../index';
import { createTestApi, failure, type TestApi } from '../../testing';
import { type ChatEvent, conversationTopic } from './chat.dto';
import { messages } from './chat.table';
import { STALE_REPLY_MS } from './replies';
import { endOf, subscribe } from './test-events';

/** Chat at the API level, on the offline mock model (mock-echo answers "Echo: <question>"). */

let t: TestApi;
let owner: Session;
let viewer: Session;
let projectId: string;
beforeAll(async () => {
  // A pause between the mock's chunks, so a reply is observably "streaming" for a while.
  t = await createTestApi({}, { mockChunkDelayMs: 10 });
  owner = await t.signUp('Owner');
  viewer = await t.signUp('Viewer');
  projectId = (await t.caller(owner.accessToken).projects.create({ name: 'Chat' })).id;
  const members = t.caller(owner.accessToken).projects.members;
  await members.add({ projectId, email: viewer.user.email, role: 'viewer' });
});
afterAll(() => t.close());

const QUESTION = 'one two three four five six seven eight nine ten eleven twelve';
const deltaText = (events: ChatEvent[], replyId: string) =>
  events.map((e) => (e.type === 'reply.delta' && e.replyId === replyId ? e.text : '')).join('');
const as = (s: Session) => t.caller(s.accessToken);
const newConversation = (extra: { model?: string } = {}) =>
  as(owner).chat.conversations.create({ projectId, ...extra });
const contents = async (conversationId: string) =>
  (await as(owner).chat.messages.list({ conversationId })).items.map((m) => m.content);
const rowOf = async (api: TestApi, id: string) =>
  (await api.api.deps.db.select().from(messages).where(eq(messages.id, id)))[0];

describe('send and stream a reply', () => {
  it('announces the question, streams and stores the reply; send returns first', async () => {
    const conv = await newConversation();
    const sub = await subscribe(t, owner.accessToken, conv.id);
    const sent = await as(owner).chat.send({ conversationId: conv.id, content: QUESTION });
    const during = await as(owner).chat.messages.list({ conversationId: conv.id });
    expect(during.items.map((m) => [m.id, m.role, m.status])).toEqual([
      [sent.message.id, 'user', 'complete'],
      [sent.replyId, 'assistant', 'streaming'],
    ]);

    await sub.until(endOf(sent.replyId));
    const events = sub.events();
    const types = events.map((e) => e.type);
    expect(types.slice(0, 2)).toEqual(['message.created', 'reply.started']);
    expect(types.at(-1)).toBe('reply.completed');
    expect(types.length).toBeGreaterThanOrEqual(4);
    expect(types.slice(2, -1).every((x) => x === 'reply.delta')).toBe(true);
    expect(events[0]).toEqual({ type: 'message.created', message: sent.message });
    expect(sent.message).toMatchObject({ role: 'user', content: QUESTION, status: 'complete' });
    expect(events[1]).toEqual({ type: 'reply.started', replyId: sent.replyId });

    const reply = `Echo: ${QUESTION}`;
    const completed = events.at(-1) as Extract<ChatEvent, { type: 'reply.completed' }>;
    expect(deltaText(events, sent.replyId)).toBe(reply);
    expect(completed.message).toMatchObject({
      id: sent.replyId,
      role: 'assistant',
      content: reply,
      status: 'complete',
      model: 'mock-echo',
      errorCode: null,
      citations: [],
    });
    expect(completed.usage.outputTokens).toBe(mockTokenCount(reply));
    expect(completed.usage.inputTokens).toBeGreaterThan(mockTokenCount(QUESTION));
    expect(completed.message.usage).toEqual(completed.usage);
    expect(completed.message.completedAt).not.toBeNull();
    // Oldest first: the question, then the reply as completed.
    const after = await as(owner).chat.messages.list({ conversationId: conv.id });
    expect(after.items).toEqual([sent.message, completed.message]);
    await sub.close();
  });

  it('allows one reply at a time per conversation', async () => {
    const conv = await newConversation();
    const sub = await subscribe(t, owner.accessToken, conv.id, '0');
    const first = await as(owner).chat.send({ conversationId: conv.id, content: QUESTION });
    expect(await failure(as(owner).chat.send({ conversationId: conv.id, content: 'x' }))).toEqual({
      code: 'CONFLICT',
      appCode: 'chat.reply_in_progress',
    });
    await sub.until(endOf(first.replyId));
    // The refused send stored nothing; once the reply is done, sending works again.
    expect(await contents(conv.id)).toEqual([QUESTION, `Echo: ${QUESTION}`]);
    const second = await as(owner).chat.send({ conversationId: conv.id, content: 'now' });
    const end = await sub.until(endOf(second.replyId));
    expect(end.event).toMatchObject({ type: 'reply.completed', message: { content: 'Echo: now' } });
    await sub.close();
  });
});

describe('models and roles', () => {
  it('refuses a Claude model without ANTHROPIC_API_KEY, and an unknown model', async () => {
    const unavailable = {
      code: 'PRECONDITION_FAILED',
      message: expect.stringContaining('ANTHROPIC_API_KEY'),
      cause: expect.objectContaining({ code: 'model.unavailable' }),
    };
    await expect(newConversation({ model: 'claude-sonnet-5-5' })).rejects.toMatchObject(
      unavailable,
    );
    const unknown = { code: 'BAD_REQUEST', appCode: 'chat.unknown_model' };
    expect(await failure(newConversation({ model: 'gpt-imaginary' }))).toEqual(unknown);

    const conv = await newConversation();
    const send = (model: string) =>
      as(owner).chat.send({ conversationId: conv.id, content: 'hi', model });
    await expect(send('claude-opus-5-5')).rejects.toMatchObject(unavailable);
    expect(await failure(send('nope-1'))).toEqual(unknown);
    expect(await contents(conv.id)).toEqual([]);
  });

  it('lets a viewer read and subscribe, but not write', async () => {
    const conv = await newConversation();
    const sub = await subscribe(t, viewer.accessToken, conv.id);
    const sent = await as(owner).chat.send({ conversationId: conv.id, content: 'for viewers' });
    await sub.until(endOf(sent.replyId));
    expect(sub.events()[0]).toEqual({ type: 'message.created', message: sent.message });
    const v = as(viewer).chat;
    expect((await v.conversations.list({ projectId })).items.map((x) => x.id)).toContain(conv.id);
    const list = await v.messages.list({ conversationId: conv.id });
    expect(list.items.map((m) => m.content)).toEqual(['for viewers', 'Echo: for viewers']);

    const forbidden = { code: 'FORBIDDEN', appCode: 'projects.role_insufficient' };
    expect(await failure(v.send({ conversationId: conv.id, content: 'x' }))).toEqual(forbidden);
    expect(await failure(v.conversations.create({ projectId }))).toEqual(forbidden);
    expect(await failure(v.cancel({ replyId: sent.replyId }))).toEqual(forbidden);
    expect(await contents(conv.id)).toHaveLength(2);
    await sub.close();
  });
});

describe('resuming a subscription', () => {
  it('replays exactly the events after lastEventId, each once, then continues live', async () => {
    const conv = await newConversation();
    const sent = await as(owner).chat.send({ conversationId: conv.id, content: QUESTION });
    const full = await subscribe(t, owner.accessToken, conv.id, '0');
    await full.until(endOf(sent.replyId));
    const all = full.items();
    await full.close();

    const mid = Math.floor(all.length / 2);
    const rest = all.slice(mid + 1);
    const resumed = await subscribe(t, owner.accessToken, conv.id, all[mid]?.id);
    await resumed.until(endOf(sent.replyId));
    expect(rest.length).toBeGreaterThanOrEqual(2);
    expect(resumed.items()).toEqual(rest);

    // Live events follow the backlog, nothing repeated in between.
    const next = await as(owner).chat.send({ conversationId: conv.id, content: 'again' });
    await resumed.until(endOf(next.replyId));
    const got = resumed.items();
    expect(got.slice(0, rest.length)).toEqual(rest);
    expect(got[rest.length]?.event).toEqual({ type: 'message.created', message: next.message });
    const ids = got.map((x) => Number(x.id));
    expect(ids).toEqual([...new Set(ids)].sort((a, b) => a - b));
    await resumed.close();
  });

  it('refuses a malformed lastEventId, and one past retention, with their codes', async () => {
    const conv = await newConversation();
    const attempt = async (lastEventId: string) => {
      const it = await as(owner).chat.onEvent({ conversationId: conv.id, lastEventId });
      for await (const _ of it as AsyncIterable<unknown>) break;
    };
    for (const id of ['abc', '-1', '1.5', '1234567890123456']) {
      expect([id, await failure(attempt(id))]).toEqual([
        id,
        { code: 'BAD_REQUEST', appCode: 'events.invalid_id' },
      ]);
    }
    // As if events up to id 10 had been pruned; removed again, other tests resume from 0.
    await t.api.deps.db.insert(eventRetention).values({ id: 1, prunedThrough: 10 });
    const expired = await failure(attempt('9')).finally(() => t.api.deps.db.delete(eventRetention));
    expect(expired).toEqual({ code: 'PRECONDITION_FAILED', appCode: 'events.expired' });
  });
});

describe('restart recovery', () => {
  // A fresh instance: its periodic sweep (every 15 s) cannot get there before the tests do.
  let r: TestApi;
  let s: Session;
  let open = true;
  beforeAll(async () => {
    r = await createTestApi({}, { mockChunkDelayMs: 30 });
    s = await r.signUp('Restarts');
  });
  afterAll(() => (open ? r.close() : r.api.database.close()));
  const conversation = async () => {
    const pid = (await r.caller(s.accessToken).projects.create({ name: 'R' })).id;
    return r.caller(s.accessToken).chat.conversations.create({ projectId: pid });
  };

  it('sweep fails replies whose heartbeat went stale, and only those', async () => {
    const [dead, alive] = [await conversation(), await conversation()];
    // Rows as a process that died mid-reply leaves them, and one still beating elsewhere.
    const streaming = async (conversationId: string, heartbeatAt: Date) => {
      const row = { conversationId, content: 'Half a', heartbeatAt };
      const [inserted] = await r.api.deps.db
        .insert(messages)
        .values({ ...row, role: 'assistant', status: 'streaming' })
        .returning({ id: messages.id });
      return inserted?.id ?? '';
    };
    const deadId = await streaming(dead.id, new Date(Date.now() - STALE_REPLY_MS - 1_000));
    const aliveId = await streaming(alive.id, new Date());
    const sub = await subscribe(r, s.accessToken, dead.id, '0');

    expect(await r.api.deps.replies.sweep()).toBe(1);
    expect((await sub.until(() => true)).event).toEqual({
      type: 'reply.failed',
      replyId: deadId,
      appCode: 'reply.interrupted',
      message: expect.stringContaining('send the message again'),
    });
    expect(await rowOf(r, deadId)).toMatchObject({
      status: 'failed',
      errorCode: 'reply.interrupted',
      content: 'Half a',
      heartbeatAt: null,
      completedAt: expect.any(Date),
    });
    expect(await rowOf(r, aliveId)).toMatchObject({ status: 'streaming', errorCode: null });

    // Once only; the swept conversation takes messages again, the other one not yet.
    expect(await r.api.deps.replies.sweep()).toBe(0);
    const c = r.caller(s.accessToken).chat;
    const next = await c.send({ conversationId: dead.id, content: 'retry' });
    await sub.until(endOf(next.replyId));
    expect(sub.events().filter((e) => e.type === 'reply.failed')).toHaveLength(1);
    expect(await failure(c.send({ conversationId: alive.id, content: 'x' }))).toEqual({
      code: 'CONFLICT',
      appCode: 'chat.reply_in_progress',
    });
    await sub.close();
  });

  it('closing the api stores a streaming reply as failed, reply.interrupted', async () => {
    const conv = await conversation();
    const sub = await subscribe(r, s.accessToken, conv.id, '0');
    const c = r.caller(s.accessToken).chat;
    const content = `${QUESTION} ${QUESTION} ${QUESTION}`; // about a second to stream
    const { replyId } = await c.send({ conversationId: conv.id, content });
    await sub.until((e) => e.type === 'reply.delta');
    await sub.close();

    open = false;
    await r.api.close();
    expect(r.api.deps.replies.inFlight).toBe(0);
    const row = await rowOf(r, replyId);
    expect(row).toMatchObject({ status: 'failed', errorCode: 'reply.interrupted' });
    const stored = await r.api.deps.bus.readAfter(conversationTopic(conv.id), 0, 1_000);
    const events = stored.map((e) => ({ type: e.type, ...e.payload }) as ChatEvent);
    expect(events.at(-1)).toMatchObject({ type: 'reply.failed', appCode: 'reply.interrupted' });
    // The partial text is kept, and it is exactly what was announced.
    expect(row?.content).toMatch(/^Echo: one/);
    expect(`Echo: ${content}`.startsWith(row?.content ?? '-')).toBe(true);
    expect(row?.content.length).toBeLessThan(`Echo: ${content}`.length);
    expect(deltaText(events, replyId)).toBe(row?.content);
  });
});
