import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FakeAnthropic } from '../../ai/testing/fake-anthropic';
import { failure, type TestApi } from '../../testing';
import { MODEL, projectWith, startWithFakeAnthropic } from '../runs/testing';
import { messages } from './chat.table';

/**
 * Conversations with an agent: each reply is a run of the agent (its instructions, model,
 * tools, handoffs and approvals), and the run's progress arrives in the conversation as the
 * reply's events.
 */

let fake: FakeAnthropic;
let t: TestApi;
let close: () => Promise<void>;
beforeAll(async () => {
  ({ fake, t, close } = await startWithFakeAnthropic());
});
afterAll(() => close());
beforeEach(() => fake.reset());

type Caller = ReturnType<TestApi['caller']>;
type Event = { type: string } & Record<string, unknown>;

async function chatEvents(conversationId: string): Promise<Event[]> {
  const stored = await t.api.deps.bus.readAfter(`conversation:${conversationId}`, 0, 1000);
  return stored.map((e) => ({ type: e.type, ...e.payload }));
}

/** Waits until the reply is no longer streaming and returns it. */
async function replyOf(c: Caller, conversationId: string, replyId: string, status?: string) {
  const find = async () =>
    (await c.chat.messages.list({ conversationId, limit: 50 })).items.find((m) => m.id === replyId);
  await expect
    .poll(async () => (await find())?.status, { timeout: 15_000, interval: 50 })
    .toMatch(status ? new RegExp(`^${status}$`) : /^(complete|failed|cancelled)$/);
  return find();
}

async function withAgent(name: string, extra: { requiresApproval?: string[] } = {}) {
  const ctx = await projectWith(t, name);
  const agent = await ctx.c.agents.create({
    projectId: ctx.projectId,
    name: 'Chatty',
    instructions: `agent-chat-${name}`,
    model: MODEL,
    tools: ['calculator'],
    ...extra,
  });
  const conversation = await ctx.c.chat.conversations.create({
    projectId: ctx.projectId,
    agentId: agent.id,
  });
  return { ...ctx, agent, conversation };
}

const mine = (name: string) =>
  fake.requests.filter((r) => JSON.stringify(r.system).includes(`agent-chat-${name}`));

describe('a conversation with an agent', () => {
  it("replies with a run of the agent: its tools' steps stream into the chat", async () => {
    const { c, agent, conversation } = await withAgent('tools');
    expect(conversation).toMatchObject({ agentId: agent.id, model: null });
    fake.script(
      {
        kind: 'tool-use',
        chunks: ['Let me compute. '],
        calls: [{ name: 'calculator', input: { expression: '6 * 7' } }],
      },
      { kind: 'reply', chunks: ['It is ', '42.'] },
    );
    const { replyId } = await c.chat.send({ conversationId: conversation.id, content: '6 x 7?' });
    const reply = await replyOf(c, conversation.id, replyId);
    expect(reply).toMatchObject({ status: 'complete', content: 'It is 42.', model: MODEL });
    expect(reply?.usage?.outputTokens).toBeGreaterThan(0);
    // The agent's instructions and tools were used.
    expect(mine('tools')).toHaveLength(2);
    const offered = (mine('tools')[0]?.tools ?? []) as Array<{ name: string }>;
    expect(offered.map((x) => x.name)).toEqual(['calculator']);

    const events = await chatEvents(conversation.id);
    const kinds = events.map((e) =>
      e.type === 'reply.progress' ? `progress:${(e.event as Event).type}` : e.type,
    );
    expect(kinds[0]).toBe('message.created');
    expect(kinds[1]).toBe('reply.started');
    expect(kinds.at(-1)).toBe('reply.completed');
    for (const k of ['progress:tool.called', 'progress:tool.result', 'reply.delta']) {
      expect(kinds).toContain(k);
    }
    expect(kinds.indexOf('progress:tool.called')).toBeLessThan(
      kinds.indexOf('progress:tool.result'),
    );
    const result = events.find(
      (e) => e.type === 'reply.progress' && (e.event as Event).type === 'tool.result',
    );
    expect(result).toMatchObject({
      replyId,
      event: { tool: 'calculator', output: { result: 42 } },
    });
    const streamed = events
      .filter((e) => e.type === 'reply.delta')
      .map((e) => e.text)
      .join('');
    expect(streamed).toBe('Let me compute. It is 42.');
    // The run is a run like any other, linked to the reply.
    const runId = (result as unknown as { runId: string }).runId;
    expect(await c.runs.get({ runId })).toMatchObject({
      status: 'succeeded',
      conversationId: conversation.id,
      replyId,
      agentId: agent.id,
    });

    // The next message's run sees the conversation so far.
    fake.script({ kind: 'reply', chunks: ['Twice that is 84.'] });
    const second = await c.chat.send({ conversationId: conversation.id, content: 'And twice?' });
    expect(await replyOf(c, conversation.id, second.replyId)).toMatchObject({
      status: 'complete',
      content: 'Twice that is 84.',
    });
    const sent = JSON.stringify(mine('tools')[2]?.messages);
    expect(sent).toContain('6 x 7?');
    expect(sent).toContain('It is 42.');
    expect(sent).toContain('And twice?');
  });

  it('a step that needs approval pauses the reply; approved, the reply completes', async () => {
    const { c, conversation } = await withAgent('approval', { requiresApproval: ['calculator'] });
    fake.script(
      { kind: 'tool-use', calls: [{ name: 'calculator', input: { expression: '2 + 2' } }] },
      { kind: 'reply', chunks: ['Four.'] },
    );
    const { replyId } = await c.chat.send({ conversationId: conversation.id, content: '2+2?' });
    let requested: Event | undefined;
    await expect
      .poll(
        async () => {
          requested = (await chatEvents(conversation.id)).find(
            (e) => e.type === 'reply.progress' && (e.event as Event).type === 'approval.requested',
          );
          return Boolean(requested);
        },
        { timeout: 15_000, interval: 50 },
      )
      .toBe(true);
    const event = requested?.event as { approvalId: string; tool: string };
    expect(event.tool).toBe('calculator');
    // Still the conversation's reply in progress: one at a time.
    expect(
      await failure(c.chat.send({ conversationId: conversation.id, content: 'hello?' })),
    ).toEqual({ code: 'CONFLICT', appCode: 'chat.reply_in_progress' });
    // Waiting on a person is not a dead process: the reply sweep leaves it.
    await t.api.deps.replies.sweep(0);
    const [row] = await t.api.deps.db.select().from(messages).where(eq(messages.id, replyId));
    expect(row?.status).toBe('streaming');

    await c.runs.approve({ runId: requested?.runId as string, approvalId: event.approvalId });
    expect(await replyOf(c, conversation.id, replyId)).toMatchObject({
      status: 'complete',
      content: 'Four.',
    });
    const kinds = (await chatEvents(conversation.id)).map((e) =>
      e.type === 'reply.progress' ? (e.event as Event).type : e.type,
    );
    expect(kinds.indexOf('approval.decided')).toBeGreaterThan(kinds.indexOf('approval.requested'));
  });

  it('chat.cancel stops the run; the reply ends cancelled', async () => {
    const { c, conversation } = await withAgent('cancel', { requiresApproval: ['calculator'] });
    fake.script({ kind: 'tool-use', calls: [{ name: 'calculator', input: { expression: '1' } }] });
    const { replyId } = await c.chat.send({ conversationId: conversation.id, content: 'x' });
    await expect
      .poll(
        async () => (await c.runs.list({ projectId: conversation.projectId })).items[0]?.status,
        {
          timeout: 15_000,
          interval: 50,
        },
      )
      .toBe('awaiting_approval');
    await c.chat.cancel({ replyId });
    expect(await replyOf(c, conversation.id, replyId)).toMatchObject({
      status: 'cancelled',
      errorCode: 'reply.cancelled',
    });
    expect((await chatEvents(conversation.id)).at(-1)).toMatchObject({
      type: 'reply.failed',
      replyId,
      appCode: 'reply.cancelled',
    });
    const [run] = (await c.runs.list({ projectId: conversation.projectId })).items;
    expect(run?.status).toBe('cancelled');
    // The conversation takes the next message.
    fake.script({ kind: 'reply', chunks: ['ok'] });
    const next = await c.chat.send({ conversationId: conversation.id, content: 'again' });
    expect((await replyOf(c, conversation.id, next.replyId))?.status).toBe('complete');
  });

  it('a failing run fails the reply with its code', async () => {
    const { c, conversation } = await withAgent('fails');
    fake.script({ kind: 'error', status: 400, message: 'bad request upstream' });
    const { replyId } = await c.chat.send({ conversationId: conversation.id, content: 'x' });
    const reply = await replyOf(c, conversation.id, replyId);
    expect(reply).toMatchObject({ status: 'failed', errorCode: expect.stringMatching(/^model\./) });
    expect((await chatEvents(conversation.id)).at(-1)).toMatchObject({
      type: 'reply.failed',
      replyId,
      appCode: reply?.errorCode,
    });
  });

  it('a reply whose run is gone (its agent deleted) is swept, not left streaming', async () => {
    const { c, agent, conversation } = await withAgent('gone', {
      requiresApproval: ['calculator'],
    });
    fake.script({ kind: 'tool-use', calls: [{ name: 'calculator', input: { expression: '1' } }] });
    const { replyId } = await c.chat.send({ conversationId: conversation.id, content: 'x' });
    await expect
      .poll(
        async () => (await c.runs.list({ projectId: conversation.projectId })).items[0]?.status,
        {
          timeout: 15_000,
          interval: 50,
        },
      )
      .toBe('awaiting_approval');
    await c.agents.delete({ agentId: agent.id });
    expect(await t.api.deps.replies.sweep()).toBeGreaterThanOrEqual(1);
    expect(await replyOf(c, conversation.id, replyId)).toMatchObject({
      status: 'failed',
      errorCode: 'reply.interrupted',
    });
    // The agent gone, the conversation is a plain one.
    expect(await c.chat.conversations.get({ conversationId: conversation.id })).toMatchObject({
      agentId: null,
    });
  });

  it('refuses foreign or inactive agents, and a model or prompt of its own', async () => {
    const { c, projectId, agent, conversation } = await withAgent('checks');
    const other = await projectWith(t, 'Agent Chat Other');
    const foreign = await other.c.agents.create({
      projectId: other.projectId,
      name: 'Foreign',
      instructions: 'x',
      model: MODEL,
    });
    expect(await failure(c.chat.conversations.create({ projectId, agentId: foreign.id }))).toEqual({
      code: 'NOT_FOUND',
      appCode: 'agents.not_found',
    });
    for (const extra of [{ model: MODEL }, { systemPrompt: 'be brief' }, { grounded: true }]) {
      expect(
        await failure(c.chat.conversations.create({ projectId, agentId: agent.id, ...extra })),
      ).toEqual({ code: 'BAD_REQUEST', appCode: 'chat.agent_conversation' });
    }
    expect(
      await failure(
        c.chat.send({ conversationId: conversation.id, content: 'x', model: 'mock-echo' }),
      ),
    ).toEqual({ code: 'BAD_REQUEST', appCode: 'chat.agent_conversation' });
    for (const patch of [{ model: MODEL }, { systemPrompt: 'terse' }, { grounded: true }]) {
      expect(
        await failure(c.chat.conversations.update({ conversationId: conversation.id, ...patch })),
      ).toEqual({ code: 'BAD_REQUEST', appCode: 'chat.agent_conversation' });
    }
    // A title is its own.
    expect(
      await c.chat.conversations.update({ conversationId: conversation.id, title: 'Sums' }),
    ).toMatchObject({ title: 'Sums', model: null, systemPrompt: null, grounded: false });
    await c.agents.update({ agentId: agent.id, status: 'inactive' });
    expect(await failure(c.chat.send({ conversationId: conversation.id, content: 'x' }))).toEqual({
      code: 'PRECONDITION_FAILED',
      appCode: 'agents.inactive',
    });
    expect(await failure(c.chat.conversations.create({ projectId, agentId: agent.id }))).toEqual({
      code: 'PRECONDITION_FAILED',
      appCode: 'agents.inactive',
    });
  });
});
