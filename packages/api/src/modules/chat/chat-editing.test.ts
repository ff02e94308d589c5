import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../../index';
import { createTestApi, failure, type TestApi } from '../../testing';
import { auditEvents } from '../audit/audit.table';
import type { ChatEvent } from './chat.dto';
import { conversations, messages } from './chat.table';
import { buildReplyPrompt } from './reply-prompt';
import { endOf, subscribe } from './test-events';

/**
 * Reading, changing and deleting conversations, regenerating and editing, and files sent
 * with a message, on the offline mock model (mock-echo answers "Echo: <question>").
 */

let t: TestApi;
let owner: Session;
let admin: Session;
let member: Session;
let viewer: Session;
let outsider: Session;
let projectId: string;
let otherProjectId: string;
beforeAll(async () => {
  // A pause between the mock's chunks, so a reply is observably "streaming" for a while.
  t = await createTestApi({}, { mockChunkDelayMs: 10 });
  owner = await t.signUp('Owner');
  admin = await t.signUp('Admin');
  member = await t.signUp('Member');
  viewer = await t.signUp('Viewer');
  outsider = await t.signUp('Outsider');
  projectId = (await as(owner).projects.create({ name: 'Editing' })).id;
  const members = as(owner).projects.members;
  await members.add({ projectId, email: admin.user.email, role: 'admin' });
  await members.add({ projectId, email: member.user.email, role: 'member' });
  await members.add({ projectId, email: viewer.user.email, role: 'viewer' });
  otherProjectId = (await as(outsider).projects.create({ name: 'Elsewhere' })).id;
});
afterAll(() => t.close());

const QUESTION = 'one two three four five six seven eight nine ten eleven twelve';
const LONG = `${QUESTION} ${QUESTION} ${QUESTION}`;
const as = (s: Session) => t.caller(s.accessToken);
const newConversation = (by: Session = owner, extra: { grounded?: boolean } = {}) =>
  as(by).chat.conversations.create({ projectId, ...extra });
const listed = async (conversationId: string) =>
  (await as(owner).chat.messages.list({ conversationId })).items;
const contents = async (conversationId: string) =>
  (await listed(conversationId)).map((m) => m.content);
const streamingIn = async (conversationId: string) =>
  t.api.deps.db
    .select({ id: messages.id })
    .from(messages)
    .where(and(eq(messages.conversationId, conversationId), eq(messages.status, 'streaming')));
const forbidden = { code: 'FORBIDDEN', appCode: 'projects.role_insufficient' };
const inProgress = { code: 'CONFLICT', appCode: 'chat.reply_in_progress' };

/** Sends a question and waits for its reply to complete. */
async function exchange(conversationId: string, content: string, by: Session = owner) {
  const sub = await subscribe(t, owner.accessToken, conversationId);
  const sent = await as(by).chat.send({ conversationId, content });
  await sub.until(endOf(sent.replyId));
  await sub.close();
  return sent;
}

function upload(pid: string, by: Session, name: string, text: BlobPart) {
  const fd = new FormData();
  fd.set('projectId', pid);
  fd.set('file', new Blob([text]), name);
  return as(by).files.upload(fd);
}

describe('chat.conversations.get and update', () => {
  it('gets a conversation for any member, NOT_FOUND for others', async () => {
    const conv = await newConversation();
    expect(await as(viewer).chat.conversations.get({ conversationId: conv.id })).toEqual(conv);
    const notFound = { code: 'NOT_FOUND', appCode: 'chat.conversation_not_found' };
    const c = as(outsider).chat.conversations;
    expect(await failure(c.get({ conversationId: conv.id }))).toEqual(notFound);
    expect(await failure(c.get({ conversationId: crypto.randomUUID() }))).toEqual(notFound);
  });

  it('changes the fields given, clears with null, announces conversation.updated', async () => {
    const conv = await as(owner).chat.conversations.create({
      projectId,
      title: 'Draft',
      systemPrompt: 'Be terse.',
    });
    const sub = await subscribe(t, viewer.accessToken, conv.id);
    const c = as(member).chat.conversations;
    const renamed = await c.update({ conversationId: conv.id, title: 'Plans', grounded: true });
    expect(renamed).toMatchObject({
      title: 'Plans',
      grounded: true,
      systemPrompt: 'Be terse.',
      model: null,
    });
    expect(Date.parse(renamed.updatedAt)).toBeGreaterThanOrEqual(Date.parse(conv.updatedAt));
    const cleared = await c.update({
      conversationId: conv.id,
      title: null,
      systemPrompt: null,
      model: 'mock-echo',
    });
    expect(cleared).toMatchObject({ title: null, systemPrompt: null, model: 'mock-echo' });
    expect(await c.get({ conversationId: conv.id })).toEqual(cleared);
    await sub.until((e) => e.type === 'conversation.updated' && e.conversation.title === null);
    expect(sub.events()).toEqual([
      { type: 'conversation.updated', conversation: renamed },
      { type: 'conversation.updated', conversation: cleared },
    ]);
    await sub.close();
  });

  it('refuses an unknown model as create does, and viewers', async () => {
    const conv = await newConversation();
    const c = as(owner).chat.conversations;
    expect(await failure(c.update({ conversationId: conv.id, model: 'gpt-imaginary' }))).toEqual({
      code: 'BAD_REQUEST',
      appCode: 'chat.unknown_model',
    });
    const v = as(viewer).chat.conversations;
    expect(await failure(v.update({ conversationId: conv.id, title: 'mine' }))).toEqual(forbidden);
    expect(await c.get({ conversationId: conv.id })).toEqual(conv);
  });
});

describe('chat.conversations.delete', () => {
  it('is for the creator or a project admin; it removes the messages and audits', async () => {
    const conv = await newConversation(member);
    await exchange(conv.id, 'keep me', member);
    const c = (s: Session) => as(s).chat.conversations;
    expect(await failure(c(viewer).delete({ conversationId: conv.id }))).toEqual(forbidden);
    const otherMember = await newConversation(owner);
    expect(await failure(c(member).delete({ conversationId: otherMember.id }))).toEqual({
      code: 'FORBIDDEN',
      appCode: 'chat.not_creator',
    });
    expect(await failure(c(outsider).delete({ conversationId: conv.id }))).toEqual({
      code: 'NOT_FOUND',
      appCode: 'chat.conversation_not_found',
    });
    expect(await contents(conv.id)).toEqual(['keep me', 'Echo: keep me']);

    const sub = await subscribe(t, owner.accessToken, conv.id);
    expect(await c(member).delete({ conversationId: conv.id })).toEqual({ ok: true });
    await sub.until((e) => e.type === 'conversation.deleted');
    expect(sub.events()).toEqual([{ type: 'conversation.deleted', conversationId: conv.id }]);
    await sub.close();
    expect(await failure(c(owner).get({ conversationId: conv.id }))).toEqual({
      code: 'NOT_FOUND',
      appCode: 'chat.conversation_not_found',
    });
    const left = await t.api.deps.db
      .select()
      .from(messages)
      .where(eq(messages.conversationId, conv.id));
    expect(left).toEqual([]);
    const audit = await t.api.deps.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.target, conv.id));
    expect(audit.map((a) => [a.action, a.actorId])).toEqual([
      ['chat.conversation_deleted', member.user.id],
    ]);

    // A project admin may delete what someone else started.
    expect(await c(admin).delete({ conversationId: otherMember.id })).toEqual({ ok: true });
    const listedIds = (await c(owner).list({ projectId })).items.map((x) => x.id);
    expect(listedIds).not.toContain(otherMember.id);
  });

  it('cancels a streaming reply first; nothing of it is written afterwards', async () => {
    const conv = await newConversation();
    const sub = await subscribe(t, owner.accessToken, conv.id);
    const { replyId } = await as(owner).chat.send({ conversationId: conv.id, content: LONG });
    await sub.until((e) => e.type === 'reply.delta');
    await as(owner).chat.conversations.delete({ conversationId: conv.id });
    expect(t.api.deps.replies.inFlight).toBe(0);
    await sub.until((e) => e.type === 'conversation.deleted');
    // Give a straggler every chance to show up before looking.
    await new Promise((r) => setTimeout(r, 200));
    const types = sub.events().map((e) => e.type);
    expect(types.at(-1)).toBe('conversation.deleted');
    expect(sub.events().at(-2)).toMatchObject({
      type: 'reply.failed',
      replyId,
      appCode: 'reply.cancelled',
    });
    const rows = await t.api.deps.db.select().from(messages).where(eq(messages.id, replyId));
    expect(rows).toEqual([]);
    const convRows = await t.api.deps.db
      .select()
      .from(conversations)
      .where(eq(conversations.id, conv.id));
    expect(convRows).toEqual([]);
    await sub.close();
  });
});

describe('chat.regenerate', () => {
  it('replaces the last reply with a new one to the same question', async () => {
    const conv = await newConversation();
    const first = await exchange(conv.id, QUESTION);
    const sub = await subscribe(t, viewer.accessToken, conv.id);
    const { replyId } = await as(member).chat.regenerate({ conversationId: conv.id });
    expect(replyId).not.toBe(first.replyId);
    const end = await sub.until(endOf(replyId));
    const events = sub.events();
    expect(events.slice(0, 2)).toEqual([
      { type: 'message.deleted', messageId: first.replyId },
      { type: 'reply.started', replyId },
    ]);
    expect(events.slice(2, -1).every((e) => e.type === 'reply.delta')).toBe(true);
    expect(end.event).toMatchObject({
      type: 'reply.completed',
      message: { id: replyId, content: `Echo: ${QUESTION}`, status: 'complete' },
    });
    const now = await listed(conv.id);
    expect(now.map((m) => [m.id, m.content])).toEqual([
      [first.message.id, QUESTION],
      [replyId, `Echo: ${QUESTION}`],
    ]);
    await sub.close();
  });

  it('regenerates a cancelled reply, with another model if asked', async () => {
    const conv = await newConversation();
    const sub = await subscribe(t, owner.accessToken, conv.id);
    const sent = await as(owner).chat.send({ conversationId: conv.id, content: LONG });
    await sub.until((e) => e.type === 'reply.delta');
    await as(owner).chat.cancel({ replyId: sent.replyId });
    await sub.until(endOf(sent.replyId));
    const again = await as(owner).chat.regenerate({ conversationId: conv.id, model: 'mock-echo' });
    const end = await sub.until(endOf(again.replyId));
    expect(end.event).toMatchObject({
      type: 'reply.completed',
      message: { content: `Echo: ${LONG}`, model: 'mock-echo' },
    });
    expect(await contents(conv.id)).toEqual([LONG, `Echo: ${LONG}`]);
    await sub.close();
  });

  it('refuses while a reply streams, with nothing to replace, and for viewers', async () => {
    const conv = await newConversation();
    const c = (s: Session) => as(s).chat;
    expect(await failure(c(owner).regenerate({ conversationId: conv.id }))).toEqual({
      code: 'CONFLICT',
      appCode: 'chat.nothing_to_regenerate',
    });
    const sub = await subscribe(t, owner.accessToken, conv.id);
    const sent = await c(owner).send({ conversationId: conv.id, content: QUESTION });
    expect(await failure(c(owner).regenerate({ conversationId: conv.id }))).toEqual(inProgress);
    await sub.until(endOf(sent.replyId));
    expect(await failure(c(viewer).regenerate({ conversationId: conv.id }))).toEqual(forbidden);
    expect(
      await failure(c(owner).regenerate({ conversationId: conv.id, model: 'nope-1' })),
    ).toEqual({ code: 'BAD_REQUEST', appCode: 'chat.unknown_model' });
    expect(await failure(c(outsider).regenerate({ conversationId: conv.id }))).toEqual({
      code: 'NOT_FOUND',
      appCode: 'chat.conversation_not_found',
    });
    // None of the refusals touched the reply.
    expect((await listed(conv.id)).map((m) => m.id)).toEqual([sent.message.id, sent.replyId]);
    await sub.close();
  });
});

describe('chat.edit', () => {
  it('rewrites a question, discards everything after it, and answers again', async () => {
    const conv = await newConversation();
    const first = await exchange(conv.id, 'first question', member);
    const second = await exchange(conv.id, 'second question', member);
    const sub = await subscribe(t, viewer.accessToken, conv.id);
    const edited = await as(member).chat.edit({
      messageId: first.message.id,
      content: 'better question',
    });
    expect(edited.message).toMatchObject({
      id: first.message.id,
      role: 'user',
      content: 'better question',
      authorId: member.user.id,
      createdAt: first.message.createdAt,
      editedAt: expect.any(String),
    });
    await sub.until(endOf(edited.replyId));
    const events = sub.events();
    expect(events[0]).toEqual({ type: 'message.updated', message: edited.message });
    const truncated = events[1] as Extract<ChatEvent, { type: 'messages.truncated' }>;
    expect(truncated.type).toBe('messages.truncated');
    expect(truncated.afterMessageId).toBe(first.message.id);
    expect([...truncated.messageIds].sort()).toEqual(
      [first.replyId, second.message.id, second.replyId].sort(),
    );
    expect(events[2]).toEqual({ type: 'reply.started', replyId: edited.replyId });
    expect(events.at(-1)).toMatchObject({
      type: 'reply.completed',
      message: { id: edited.replyId, content: 'Echo: better question' },
    });
    const now = await listed(conv.id);
    expect(now.map((m) => [m.id, m.content])).toEqual([
      [first.message.id, 'better question'],
      [edited.replyId, 'Echo: better question'],
    ]);
    await sub.close();
  });

  it('is for the author or a project admin, for questions only, refused while streaming', async () => {
    const conv = await newConversation();
    const sent = await exchange(conv.id, 'by the member', member);
    const edit = (s: Session, messageId: string, content = 'changed') =>
      failure(as(s).chat.edit({ messageId, content }));
    expect(await edit(owner, sent.replyId)).toEqual({
      code: 'BAD_REQUEST',
      appCode: 'chat.message_not_editable',
    });
    expect(await edit(viewer, sent.message.id)).toEqual(forbidden);
    // The owner is a project admin+, so edits are refused to a plain member who did not write.
    const own = await exchange(conv.id, 'by the owner');
    expect(await edit(member, own.message.id)).toEqual({
      code: 'FORBIDDEN',
      appCode: 'chat.not_author',
    });
    const notFound = { code: 'NOT_FOUND', appCode: 'chat.message_not_found' };
    expect(await edit(outsider, sent.message.id)).toEqual(notFound);
    expect(await edit(member, crypto.randomUUID())).toEqual(notFound);
    expect(await contents(conv.id)).toEqual([
      'by the member',
      'Echo: by the member',
      'by the owner',
      'Echo: by the owner',
    ]);

    const sub = await subscribe(t, owner.accessToken, conv.id);
    const busy = await as(owner).chat.send({ conversationId: conv.id, content: LONG });
    expect(await edit(member, sent.message.id)).toEqual(inProgress);
    await sub.until(endOf(busy.replyId));
    // An admin edits a member's question.
    const byAdmin = await as(admin).chat.edit({ messageId: sent.message.id, content: 'fixed' });
    await sub.until(endOf(byAdmin.replyId));
    expect(await contents(conv.id)).toEqual(['fixed', 'Echo: fixed']);
    expect((await listed(conv.id))[0]?.authorId).toBe(member.user.id);
    await sub.close();
  });
});

describe('files sent with a message', () => {
  it('stores the attachments and grounds the reply on them, citing the file', async () => {
    const file = await upload(
      projectId,
      owner,
      'tides.txt',
      'The harbour tide tables are published every Monday by the port authority.',
    );
    const conv = await newConversation(); // not grounded
    const sub = await subscribe(t, owner.accessToken, conv.id);
    const sent = await as(member).chat.send({
      conversationId: conv.id,
      content: 'When are tide tables published?',
      fileIds: [file.id, file.id],
    });
    expect(sent.message.attachments).toEqual([{ fileId: file.id, name: 'tides.txt' }]);
    const end = await sub.until(endOf(sent.replyId));
    expect(end.event).toMatchObject({
      type: 'reply.completed',
      message: {
        citations: [
          { fileId: file.id, name: 'tides.txt', excerpt: expect.stringContaining('Monday') },
        ],
      },
    });
    expect(sub.events()[0]).toEqual({ type: 'message.created', message: sent.message });
    expect((await listed(conv.id))[0]?.attachments).toEqual(sent.message.attachments);

    // A follow-up without files still reads the one attached earlier.
    const [row] = await t.api.deps.db
      .select()
      .from(conversations)
      .where(eq(conversations.id, conv.id));
    if (!row) throw new Error('conversation missing');
    const prompt = await buildReplyPrompt({ db: t.api.deps.db, conversation: row, replyId: '' });
    expect(prompt.system).toContain('The user attached these files: tides.txt.');
    expect(prompt.system).toContain('published every Monday by the port authority');
    await sub.close();
  });

  it('names attached files that have no text, and adds project passages when grounded', async () => {
    // A program: stored, but no text to extract.
    const elf = Buffer.concat([Buffer.from('7f454c46020101', 'hex'), Buffer.alloc(200, 1)]);
    const binary = await upload(projectId, owner, 'tool.bin', elf);
    const doc = await upload(
      projectId,
      owner,
      'lighthouse.txt',
      'The lighthouse keeper wakes at dawn.',
    );
    const conv = await newConversation(owner, { grounded: true });
    const sent = await exchange(conv.id, 'When does the lighthouse keeper wake?');
    const [row] = await t.api.deps.db
      .select()
      .from(conversations)
      .where(eq(conversations.id, conv.id));
    if (!row) throw new Error('conversation missing');
    const grounded = await buildReplyPrompt({
      db: t.api.deps.db,
      conversation: row,
      replyId: sent.replyId,
    });
    expect(grounded.citations).toContainEqual(
      expect.objectContaining({ fileId: doc.id, name: 'lighthouse.txt' }),
    );
    const withBinary = await as(owner).chat.send({
      conversationId: conv.id,
      content: 'And this program?',
      fileIds: [binary.id],
    });
    expect(withBinary.message.attachments).toEqual([{ fileId: binary.id, name: 'tool.bin' }]);
    const prompt = await buildReplyPrompt({
      db: t.api.deps.db,
      conversation: row,
      replyId: withBinary.replyId,
    });
    expect(prompt.system).toContain('No text could be read from: tool.bin.');
    await as(owner).chat.cancel({ replyId: withBinary.replyId });
  });

  it("refuses other projects' files, unknown ids and too many, storing nothing", async () => {
    const theirs = await upload(otherProjectId, outsider, 'secret.txt', 'not for you');
    const conv = await newConversation();
    const send = (fileIds: string[]) =>
      failure(as(owner).chat.send({ conversationId: conv.id, content: 'read it', fileIds }));
    const notFound = { code: 'NOT_FOUND', appCode: 'files.not_found' };
    expect(await send([theirs.id])).toEqual(notFound);
    expect(await send([crypto.randomUUID()])).toEqual(notFound);
    const tooMany = Array.from({ length: 11 }, () => crypto.randomUUID());
    expect(await send(tooMany)).toMatchObject({ code: 'BAD_REQUEST' });
    expect(await send(['not-a-uuid'])).toMatchObject({ code: 'BAD_REQUEST' });
    expect(await contents(conv.id)).toEqual([]);
    // The refusal reads the same for a file that exists elsewhere and for none at all.
    const message = (e: unknown) => (e as Error).message;
    const a = await as(owner)
      .chat.send({ conversationId: conv.id, content: 'x', fileIds: [theirs.id] })
      .catch(message);
    expect(a).toBe(`No such file: ${theirs.id}`);
  });
});

describe('one reply at a time under concurrent calls', () => {
  it('two regenerates at once: one starts a reply, the other is refused', async () => {
    const conv = await newConversation();
    await exchange(conv.id, QUESTION);
    const sub = await subscribe(t, owner.accessToken, conv.id);
    const results = await Promise.allSettled([
      as(owner).chat.regenerate({ conversationId: conv.id }),
      as(member).chat.regenerate({ conversationId: conv.id }),
    ]);
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected');
    expect(await failure(Promise.reject(lost?.reason))).toEqual(inProgress);
    expect(await streamingIn(conv.id)).toHaveLength(1);
    const replyId = (won[0] as PromiseFulfilledResult<{ replyId: string }>).value.replyId;
    await sub.until(endOf(replyId));
    expect(await contents(conv.id)).toEqual([QUESTION, `Echo: ${QUESTION}`]);
    expect(sub.events().filter((e) => e.type === 'reply.started')).toHaveLength(1);
    await sub.close();
  });

  it('an edit and a send at once: exactly one reply streams', async () => {
    const conv = await newConversation();
    const first = await exchange(conv.id, 'original');
    const sub = await subscribe(t, owner.accessToken, conv.id);
    const results = await Promise.allSettled([
      as(owner).chat.edit({ messageId: first.message.id, content: 'edited' }),
      as(owner).chat.send({ conversationId: conv.id, content: 'follow-up' }),
    ]);
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected');
    expect(await failure(Promise.reject(lost?.reason))).toEqual(inProgress);
    expect(await streamingIn(conv.id)).toHaveLength(1);
    const { replyId } = (won[0] as PromiseFulfilledResult<{ replyId: string }>).value;
    await sub.until(endOf(replyId));
    const now = await contents(conv.id);
    expect([
      ['edited', 'Echo: edited'],
      ['original', 'Echo: original', 'follow-up', 'Echo: follow-up'],
    ]).toContainEqual(now);
    await sub.close();
  });
});
