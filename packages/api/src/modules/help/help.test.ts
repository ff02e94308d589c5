import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TRPCError } from '@trpc/server';
import { and, asc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config';
import type { DatabaseHandle } from '../../db/client';
import { openDatabase } from '../../db/client';
import { type Api, createApi, createCaller, type Session } from '../../index';
import { AppError } from '../../lib/errors';
import {
  createTestApi,
  createTestDatabase,
  failure,
  type TestApi,
  testConfig,
} from '../../testing';
import { budgetLimits } from '../budgets/budgets.table';
import type { ChatEvent } from '../chat/chat.dto';
import { documentPassages, documents } from '../documents/documents.table';
import { projects } from '../projects/projects.table';
import { apiRequests } from '../usage/usage.table';
import { HELP_PROJECT_ID } from './help.service';

/** A docs file with one passage nothing else in it shares words with. */
function docsFile(extra = ''): string {
  const dir = mkdtempSync(join(tmpdir(), 'smartspace-help-'));
  const file = join(dir, 'guide.md');
  writeFileSync(
    file,
    [
      '# Guide',
      'Projects hold conversations, agents and files.',
      'The zorblax quantizer is enabled with the ZORBLAX_LEVEL setting on the server.',
      extra,
    ].join('\n\n'),
  );
  return file;
}

async function helpDocs(api: Api) {
  const db = api.deps.db;
  const docs = await db
    .select({ id: documents.id, name: documents.name })
    .from(documents)
    .where(eq(documents.projectId, HELP_PROJECT_ID));
  const passages = await db
    .select({ content: documentPassages.content })
    .from(documentPassages)
    .where(eq(documentPassages.projectId, HELP_PROJECT_ID));
  return { docs, passages: passages.map((p) => p.content) };
}

/** Another app instance on the same database, as a restart or a second server would be. */
async function instance(database: DatabaseHandle, env: Record<string, string>) {
  return createApi({ config: testConfig(env), database, migrate: false });
}

function as(api: Api, token: string, signal?: AbortSignal) {
  return createCaller(
    api.createContext({ token, ip: '127.0.0.1', requestId: randomUUID() }),
    signal ? { signal } : undefined,
  );
}

/** Collects a help conversation's events from its first one. */
async function subscribe(api: Api, token: string, conversationId: string) {
  const ac = new AbortController();
  const stream = (await as(api, token, ac.signal).help.onEvent({
    conversationId,
    lastEventId: '0',
  })) as AsyncIterable<[string, ChatEvent]>;
  const events: ChatEvent[] = [];
  const done = (async () => {
    for await (const [, event] of stream) events.push(event);
  })();
  return {
    events,
    async until(pred: (e: ChatEvent) => boolean): Promise<ChatEvent> {
      await expect.poll(() => events.some(pred), { timeout: 10_000, interval: 10 }).toBe(true);
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

/** Asks and waits for the reply's last event. */
async function ask(api: Api, token: string, conversationId: string, content: string) {
  const sub = await subscribe(api, token, conversationId);
  try {
    const { replyId, message } = await as(api, token).help.send({ conversationId, content });
    const end = await sub.until(endOf(replyId));
    return { replyId, message, end, events: [...sub.events] };
  } finally {
    await sub.close();
  }
}

async function rateLimited(p: Promise<unknown>): Promise<{ code: string; retryAfterMs: number }> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof TRPCError) || !(e.cause instanceof AppError)) throw e;
    expect(e.cause.code).toBe('rate_limited');
    return { code: e.code, retryAfterMs: e.cause.meta?.retryAfterMs as number };
  }
  throw new Error('expected the call to be rate limited');
}

describe('help', () => {
  const docsPath = docsFile();
  const env = { PLATFORM_DOCS_PATH: docsPath, HELP_MESSAGES_PER_HOUR: '3' };
  let t: TestApi;
  let alice: Session;
  let bob: Session;
  beforeAll(async () => {
    t = await createTestApi(env);
    alice = await t.signUp('Alice');
    bob = await t.signUp('Bob');
  });
  afterAll(() => t.close());

  it('defaults PLATFORM_DOCS_PATH to the README at the repository root', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'smartspace-config-'));
    const path = loadConfig({ DATA_DIR: dataDir }).help.docsPath;
    expect(readFileSync(path, 'utf8')).toMatch(/^# SmartSpace\n/);
    expect(loadConfig({ DATA_DIR: dataDir, PLATFORM_DOCS_PATH: '/x/y.md' }).help.docsPath).toBe(
      '/x/y.md',
    );
  });

  it('loads the docs into a memberless help project that no project procedure shows', async () => {
    const { docs, passages } = await helpDocs(t.api);
    expect(docs.map((d) => d.name)).toEqual(['guide.md']);
    expect(passages.join('\n')).toContain('zorblax quantizer');
    const a = t.caller(alice.accessToken);
    expect((await a.projects.list({})).items.map((p) => p.id)).not.toContain(HELP_PROJECT_ID);
    expect(await failure(a.projects.get({ projectId: HELP_PROJECT_ID }))).toEqual({
      code: 'NOT_FOUND',
      appCode: 'projects.not_found',
    });
    expect(
      await failure(
        a.projects.members.add({
          projectId: HELP_PROJECT_ID,
          email: alice.user.email,
          role: 'owner',
        }),
      ),
    ).toEqual({ code: 'NOT_FOUND', appCode: 'projects.not_found' });
    expect(
      await failure(a.chat.conversations.create({ projectId: HELP_PROJECT_ID })),
    ).toMatchObject({ code: 'NOT_FOUND' });
    // The platform budget is a project day limit on the help project.
    const limits = await t.api.deps.db
      .select()
      .from(budgetLimits)
      .where(eq(budgetLimits.projectId, HELP_PROJECT_ID));
    expect(limits).toMatchObject([{ scope: 'project', period: 'day', amount: 5_000_000n }]);
  });

  it('streams a reply that cites the passage of the docs it was asked about', async () => {
    const a = t.caller(alice.accessToken);
    const conversation = await a.help.conversations.create({ title: 'Quantizer' });
    expect(conversation).toMatchObject({ title: 'Quantizer', grounded: true });
    const question = 'How do I enable the zorblax quantizer?';
    const { replyId, message, end, events } = await ask(
      t.api,
      alice.accessToken,
      conversation.id,
      question,
    );
    expect(message).toMatchObject({ role: 'user', content: question, authorId: alice.user.id });
    expect(events.map((e) => e.type)).toContain('reply.delta');
    if (end.type !== 'reply.completed') throw new Error(`reply failed: ${JSON.stringify(end)}`);
    expect(end.message.content).toBe(`Echo: ${question}`);
    expect(end.message.citations[0]).toMatchObject({ name: 'guide.md', fileId: null });
    expect(end.message.citations[0]?.excerpt).toContain('zorblax quantizer is enabled');

    const listed = await a.help.messages({ conversationId: conversation.id });
    expect(listed.items.map((m) => [m.role, m.status])).toEqual([
      ['user', 'complete'],
      ['assistant', 'complete'],
    ]);
    expect(listed.items[1]).toMatchObject({ id: replyId, citations: end.message.citations });

    // Through the gateway, charged to the help project, in the asker's name.
    const usage = await t.api.deps.db
      .select()
      .from(apiRequests)
      .where(eq(apiRequests.conversationId, conversation.id));
    expect(usage).toMatchObject([
      { projectId: HELP_PROJECT_ID, userId: alice.user.id, source: 'chat', status: 'succeeded' },
    ]);
  });

  it('lists only the caller’s own help conversations', async () => {
    const a = t.caller(alice.accessToken);
    const b = t.caller(bob.accessToken);
    const mine = await b.help.conversations.create();
    const bobs = (await b.help.conversations.list({})).items.map((c) => c.id);
    expect(bobs).toEqual([mine.id]);
    const alices = (await a.help.conversations.list({})).items.map((c) => c.id);
    expect(alices).not.toContain(mine.id);
    expect(alices.length).toBeGreaterThan(0);
  });

  it('answers NOT_FOUND for anyone else’s help conversation or reply', async () => {
    const a = t.caller(alice.accessToken);
    const b = t.caller(bob.accessToken);
    const conversation = await a.help.conversations.create();
    const { replyId } = await ask(t.api, alice.accessToken, conversation.id, 'Projects?');
    const conversationId = conversation.id;
    const missing = { code: 'NOT_FOUND', appCode: 'help.conversation_not_found' };
    expect(await failure(b.help.messages({ conversationId }))).toEqual(missing);
    expect(await failure(b.help.send({ conversationId, content: 'hijack' }))).toEqual(missing);
    expect(
      await failure(
        (async () => {
          const it = (await b.help.onEvent({
            conversationId,
            lastEventId: '0',
          })) as AsyncIterable<unknown>;
          for await (const _ of it) break;
        })(),
      ),
    ).toEqual(missing);
    expect(await failure(b.help.cancel({ replyId }))).toEqual({
      code: 'NOT_FOUND',
      appCode: 'help.reply_not_found',
    });
    // Neither are help conversations reachable through chat: nobody is in the help project.
    expect(await failure(a.chat.messages.list({ conversationId }))).toEqual({
      code: 'NOT_FOUND',
      appCode: 'chat.conversation_not_found',
    });
    // And a project conversation is no help conversation, even for its creator.
    const { id: projectId } = await a.projects.create({ name: 'Own' });
    const own = await a.chat.conversations.create({ projectId });
    expect(await failure(a.help.messages({ conversationId: own.id }))).toEqual(missing);
    expect(await failure(a.help.messages({ conversationId: randomUUID() }))).toEqual(missing);
    // Nothing of Bob's attempt was stored.
    expect((await a.help.messages({ conversationId })).items).toHaveLength(2);
  });

  it('cancels the caller’s own reply while it streams', async () => {
    // An instance whose mock model pauses between chunks, so the reply is still streaming.
    const slow = await createApi({
      config: testConfig(env),
      database: t.api.database,
      migrate: false,
      mockChunkDelayMs: 200,
    });
    try {
      const erin = await t.signUp('Erin');
      const c = as(slow, erin.accessToken);
      const conversation = await c.help.conversations.create();
      const sub = await subscribe(slow, erin.accessToken, conversation.id);
      try {
        const { replyId } = await c.help.send({
          conversationId: conversation.id,
          content: 'a question long enough to stream in several slow chunks of text',
        });
        await sub.until((e) => e.type === 'reply.delta');
        expect(await c.help.cancel({ replyId })).toEqual({ ok: true });
        expect(await sub.until(endOf(replyId))).toMatchObject({
          type: 'reply.failed',
          appCode: 'reply.cancelled',
        });
      } finally {
        await sub.close();
      }
    } finally {
      await slow.close();
    }
  });

  it('refuses project API keys and anonymous callers', async () => {
    const a = t.caller(bob.accessToken);
    const { id: projectId } = await a.projects.create({ name: 'Keyed' });
    const { secret } = await a.apiKeys.create({ projectId, name: 'script', role: 'owner' });
    const k = t.caller(secret);
    const refused = { code: 'FORBIDDEN', appCode: 'auth.key_not_allowed' };
    expect(await failure(k.help.conversations.list({}))).toEqual(refused);
    expect(await failure(k.help.conversations.create())).toEqual(refused);
    const mine = await a.help.conversations.create();
    expect(await failure(k.help.send({ conversationId: mine.id, content: 'hi' }))).toEqual(refused);
    expect(await failure(t.caller().help.conversations.list({}))).toEqual({
      code: 'UNAUTHORIZED',
      appCode: 'auth.unauthenticated',
    });
  });

  it('limits each person to HELP_MESSAGES_PER_HOUR questions', async () => {
    const carol = await t.signUp('Carol');
    const c = t.caller(carol.accessToken);
    const conversation = await c.help.conversations.create();
    for (let i = 0; i < 3; i++) {
      const { end } = await ask(t.api, carol.accessToken, conversation.id, `question ${i}`);
      expect(end.type).toBe('reply.completed');
    }
    const limited = await rateLimited(
      c.help.send({ conversationId: conversation.id, content: 'one more' }),
    );
    expect(limited.code).toBe('TOO_MANY_REQUESTS');
    expect(limited.retryAfterMs).toBeGreaterThan(0);
    expect(limited.retryAfterMs).toBeLessThanOrEqual(3_600_000);
    expect((await c.help.messages({ conversationId: conversation.id })).items).toHaveLength(6);
    // Someone else still may.
    const dave = await t.signUp('Dave');
    const other = await t.caller(dave.accessToken).help.conversations.create();
    const { end } = await ask(t.api, dave.accessToken, other.id, 'my turn');
    expect(end.type).toBe('reply.completed');
  });

  it('does not load unchanged docs again on restart, and replaces changed ones', async () => {
    const before = await helpDocs(t.api);
    const again = await instance(t.api.database, env);
    await again.close();
    expect(await helpDocs(t.api)).toEqual(before);

    // A path that cannot be read leaves the loaded docs alone and the server starting.
    const broken = await instance(t.api.database, { PLATFORM_DOCS_PATH: '/nonexistent/docs.md' });
    await broken.close();
    expect(await helpDocs(t.api)).toEqual(before);
    // So does a folder without any markdown.
    const empty = mkdtempSync(join(tmpdir(), 'smartspace-help-empty-'));
    writeFileSync(join(empty, 'notes.txt'), 'not documentation');
    await (await instance(t.api.database, { PLATFORM_DOCS_PATH: empty })).close();
    expect(await helpDocs(t.api)).toEqual(before);

    writeFileSync(docsPath, '# Guide\n\nThe frobnicator replaced the quantizer.\n');
    const changed = await instance(t.api.database, env);
    await changed.close();
    const after = await helpDocs(t.api);
    expect(after.docs).toHaveLength(1);
    expect(after.docs[0]?.id).not.toBe(before.docs[0]?.id);
    expect(after.passages).toEqual(['# Guide\n\nThe frobnicator replaced the quantizer.']);

    // A folder: every .md file under it, named by its path inside.
    const dir = mkdtempSync(join(tmpdir(), 'smartspace-help-dir-'));
    mkdirSync(join(dir, 'guides'));
    writeFileSync(join(dir, 'intro.md'), 'Welcome to the platform.');
    writeFileSync(join(dir, 'guides', 'agents.md'), 'Agents run tools.');
    writeFileSync(join(dir, 'notes.txt'), 'not documentation');
    const folder = await instance(t.api.database, { PLATFORM_DOCS_PATH: dir });
    await folder.close();
    const fromFolder = await helpDocs(t.api);
    expect(fromFolder.docs.map((d) => d.name).sort()).toEqual(['guides/agents.md', 'intro.md']);
    expect(fromFolder.passages.sort()).toEqual(['Agents run tools.', 'Welcome to the platform.']);
  });
});

describe('help budget', () => {
  let t: TestApi;
  let user: Session;
  beforeAll(async () => {
    t = await createTestApi({
      PLATFORM_DOCS_PATH: docsFile(),
      // A reply may cost up to 10 tokens at 0.001 USDC: the day's 0.015 covers one reply only.
      MODEL_PRICES: JSON.stringify({ 'mock-echo': { input: '0', output: '1000' } }),
      CHAT_MAX_OUTPUT_TOKENS: '10',
      HELP_BUDGET_PER_DAY: '0.015',
    });
    user = await t.signUp('Spender');
  });
  afterAll(() => t.close());

  it('ends replies with budget.exceeded once the platform help budget is spent', async () => {
    const conversation = await t.caller(user.accessToken).help.conversations.create();
    const first = await ask(t.api, user.accessToken, conversation.id, 'how is zorblax enabled');
    expect(first.end.type).toBe('reply.completed');
    const { replyId, end } = await ask(t.api, user.accessToken, conversation.id, 'zorblax?');
    expect(end).toMatchObject({ type: 'reply.failed', replyId, appCode: 'budget.exceeded' });
    const [reply] = (
      await t.caller(user.accessToken).help.messages({ conversationId: conversation.id })
    ).items.slice(-1);
    expect(reply).toMatchObject({ id: replyId, status: 'failed', errorCode: 'budget.exceeded' });
    const calls = await t.api.deps.db
      .select()
      .from(apiRequests)
      .where(and(eq(apiRequests.projectId, HELP_PROJECT_ID), eq(apiRequests.userId, user.user.id)))
      .orderBy(asc(apiRequests.createdAt));
    expect(calls.map((r) => [r.status, r.errorCode])).toEqual([
      ['succeeded', null],
      ['denied', 'budget.exceeded'],
    ]);
  });

  it('HELP_BUDGET_PER_DAY=0 turns help off and drops the limit', async () => {
    const off = await instance(t.api.database, {
      PLATFORM_DOCS_PATH: docsFile(),
      HELP_BUDGET_PER_DAY: '0',
    });
    try {
      const c = as(off, user.accessToken);
      const conversation = await c.help.conversations.create();
      expect(
        await failure(c.help.send({ conversationId: conversation.id, content: 'hi' })),
      ).toEqual({ code: 'PRECONDITION_FAILED', appCode: 'help.disabled' });
      const limits = await off.deps.db
        .select()
        .from(budgetLimits)
        .where(eq(budgetLimits.projectId, HELP_PROJECT_ID));
      expect(limits).toEqual([]);
    } finally {
      await off.close();
    }
  });
});

describe('help start-up', () => {
  it('two instances starting at once create one help project with one copy of the docs', async () => {
    const database = await createTestDatabase();
    // Separate connections when on PostgreSQL, as two servers would have.
    const second = database.url
      ? await openDatabase({ url: database.url, dataDir: 'unused', poolSize: 5 })
      : database;
    const env = { PLATFORM_DOCS_PATH: docsFile('A second paragraph about agents.') };
    try {
      const apis = await Promise.all([
        createApi({ config: testConfig(env), database, migrate: false }),
        createApi({ config: testConfig(env), database: second, migrate: false }),
      ]);
      try {
        const rows = await database.db
          .select()
          .from(projects)
          .where(eq(projects.id, HELP_PROJECT_ID));
        expect(rows).toHaveLength(1);
        const [api] = apis;
        if (!api) throw new Error('no api');
        const { docs } = await helpDocs(api);
        expect(docs.map((d) => d.name)).toEqual(['guide.md']);
        const limits = await database.db
          .select()
          .from(budgetLimits)
          .where(eq(budgetLimits.projectId, HELP_PROJECT_ID));
        expect(limits).toHaveLength(1);
      } finally {
        await Promise.all(apis.map((a) => a.close()));
      }
    } finally {
      if (second !== database) await second.close();
      await database.close();
    }
  });
});

describe('help with BILLING_MODE=prepaid', () => {
  let t: TestApi;
  beforeAll(async () => {
    t = await createTestApi({
      PLATFORM_DOCS_PATH: docsFile(),
      BILLING_MODE: 'prepaid',
      MODEL_PRICES: JSON.stringify({ 'mock-echo': { input: '0', output: '1000' } }),
      CHAT_MAX_OUTPUT_TOKENS: '10',
    });
  });
  afterAll(() => t.close());

  it('needs a balance on the help project, which a platform admin can credit', async () => {
    const admin = await t.signUp('Platform Admin'); // the first account is a platform admin
    const user = await t.signUp('Asker');
    const conversation = await t.caller(user.accessToken).help.conversations.create();
    const refused = await ask(t.api, user.accessToken, conversation.id, 'zorblax?');
    expect(refused.end).toMatchObject({ type: 'reply.failed', appCode: 'balance.insufficient' });

    await t.caller(admin.accessToken).payments.credit({
      projectId: HELP_PROJECT_ID,
      amount: '1',
      reason: 'fund the in-app help',
    });
    const funded = await ask(t.api, user.accessToken, conversation.id, 'zorblax now?');
    expect(funded.end.type).toBe('reply.completed');
  });
});
