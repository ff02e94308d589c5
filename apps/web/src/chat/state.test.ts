import { describe, expect, test } from 'vitest';
import {
  applyEvent,
  type ChatState,
  displayText,
  emptyState,
  pendingApprovals,
  resumePoint,
} from './state';
import type { ChatEvent, Message } from './types';

const CONV = '00000000-0000-4000-8000-000000000001';

function message(id: string, over: Partial<Message> = {}): Message {
  return {
    id,
    conversationId: CONV,
    role: 'assistant',
    content: '',
    authorId: null,
    model: 'mock-echo',
    status: 'complete',
    usage: null,
    citations: [],
    attachments: [],
    errorCode: null,
    createdAt: '2026-01-01T00:00:00.000Z',
    completedAt: null,
    editedAt: null,
    ...over,
  };
}

function play(state: ChatState, events: [string, ChatEvent][]): ChatState {
  return events.reduce((s, [id, e]) => applyEvent(s, id, e, CONV), state);
}

const question = message('q1', { role: 'user', content: 'hi' });
const stream: [string, ChatEvent][] = [
  ['1', { type: 'message.created', message: question }],
  ['2', { type: 'reply.started', replyId: 'r1' }],
  ['3', { type: 'reply.delta', replyId: 'r1', text: 'Echo: ' }],
  ['4', { type: 'reply.delta', replyId: 'r1', text: 'hi' }],
];

describe('applying chat events', () => {
  test('builds the streamed text, then the stored reply replaces it', () => {
    const s = play(emptyState, stream);
    const reply = s.messages.find((m) => m.id === 'r1');
    expect(reply?.status).toBe('streaming');
    expect(reply && displayText(s, reply)).toBe('Echo: hi');
    const done = play(s, [
      [
        '5',
        {
          type: 'reply.completed',
          message: message('r1', {
            content: 'Echo: hi',
            usage: { inputTokens: 1, outputTokens: 2 },
          }),
          usage: { inputTokens: 1, outputTokens: 2 },
        },
      ],
    ]);
    expect(done.drafts).toEqual({});
    expect(done.messages.map((m) => [m.id, m.status, m.content])).toEqual([
      ['q1', 'complete', 'hi'],
      ['r1', 'complete', 'Echo: hi'],
    ]);
  });

  test('an event replayed after a reconnect is applied once', () => {
    const s = play(emptyState, stream);
    const again = play(s, stream.slice(2));
    expect(again).toBe(s);
    expect(displayText(again, again.messages[1] as Message)).toBe('Echo: hi');
  });

  test('ids compare as numbers: 10 comes after 9', () => {
    const s = play(emptyState, [['9', { type: 'reply.started', replyId: 'r1' }]]);
    const next = play(s, [['10', { type: 'reply.delta', replyId: 'r1', text: 'x' }]]);
    expect(next.drafts.r1).toBe('x');
  });

  test('replaying a finished reply leaves its stored text alone', () => {
    const loaded: ChatState = {
      ...emptyState,
      messages: [question, message('r1', { content: 'Echo: hi' })],
    };
    const s = play(loaded, stream);
    expect(s.drafts).toEqual({});
    expect(displayText(s, s.messages[1] as Message)).toBe('Echo: hi');
  });

  test('a cancelled reply keeps what was streamed; a failure keeps its code', () => {
    const s = play(emptyState, stream);
    const cancelled = play(s, [
      [
        '5',
        { type: 'reply.failed', replyId: 'r1', appCode: 'reply.cancelled', message: 'cancelled' },
      ],
    ]);
    expect(cancelled.messages[1]).toMatchObject({ status: 'cancelled', content: 'Echo: hi' });
    const failed = play(s, [
      ['5', { type: 'reply.failed', replyId: 'r1', appCode: 'model.overloaded', message: 'busy' }],
    ]);
    expect(failed.messages[1]).toMatchObject({ status: 'failed', errorCode: 'model.overloaded' });
  });

  test('edits truncate, regenerations delete, and a deleted conversation is flagged', () => {
    const s = play(emptyState, [
      ...stream,
      ['5', { type: 'messages.truncated', afterMessageId: 'q1', messageIds: ['r1'] }],
    ]);
    expect(s.messages.map((m) => m.id)).toEqual(['q1']);
    expect(s.drafts).toEqual({});
    const gone = play(s, [
      ['6', { type: 'message.deleted', messageId: 'q1' }],
      ['7', { type: 'conversation.deleted', conversationId: CONV }],
    ]);
    expect(gone.messages).toEqual([]);
    expect(gone.deleted).toBe(true);
  });
});

describe('where a reload resumes', () => {
  const running = [question, message('r1', { status: 'streaming' })];

  test('from the saved id, with the saved text of the running reply', () => {
    expect(
      resumePoint(running, { lastEventId: '4', drafts: { r1: 'Echo: hi', old: 'x' } }),
    ).toEqual({
      lastEventId: '4',
      drafts: { r1: 'Echo: hi' },
      steps: {},
    });
  });

  test('from the topic start when nothing of the running reply was saved', () => {
    expect(resumePoint(running, null)).toEqual({ lastEventId: '0', drafts: { r1: '' }, steps: {} });
    expect(resumePoint(running, { lastEventId: '2', drafts: {} })).toEqual({
      lastEventId: '0',
      drafts: { r1: '' },
      steps: {},
    });
  });

  test('from the saved id when no reply runs, else from the topic start', () => {
    const idle = [question, message('r1', { content: 'Echo: hi' })];
    expect(resumePoint(idle, { lastEventId: '5', drafts: {} })).toEqual({
      lastEventId: '5',
      drafts: {},
      steps: {},
    });
    expect(resumePoint(idle, null)).toEqual({ lastEventId: '0', drafts: {}, steps: {} });
  });

  test('live only once the retained events have expired', () => {
    expect(resumePoint(running, { lastEventId: '4', drafts: { r1: 'x' } }, true)).toEqual({
      lastEventId: null,
      drafts: { r1: '' },
      steps: {},
    });
  });

  test('replaying a whole history ends in the stored state', () => {
    const edited = message('q1', {
      role: 'user',
      content: 'hello',
      editedAt: '2026-01-01T00:01:00.000Z',
    });
    const history: [string, ChatEvent][] = [
      ...stream,
      [
        '5',
        {
          type: 'reply.completed',
          message: message('r1', { content: 'Echo: hi' }),
          usage: { inputTokens: 1, outputTokens: 2 },
        },
      ],
      ['6', { type: 'message.updated', message: edited }],
      ['7', { type: 'messages.truncated', afterMessageId: 'q1', messageIds: ['r1'] }],
      ['8', { type: 'reply.started', replyId: 'r2' }],
      ['9', { type: 'reply.delta', replyId: 'r2', text: 'Echo: hello' }],
    ];
    const stored = [edited, message('r2', { status: 'streaming' })];
    const start = resumePoint(stored, null);
    const s = play({ ...emptyState, messages: stored, ...start }, history);
    expect(s.messages.map((m) => [m.id, m.content])).toEqual([
      ['q1', 'hello'],
      ['r2', ''],
    ]);
    expect(s.drafts).toEqual({ r2: 'Echo: hello' });
  });
});

describe('a reply an agent writes', () => {
  const progress = (event: Extract<ChatEvent, { type: 'reply.progress' }>['event']): ChatEvent => ({
    type: 'reply.progress',
    replyId: 'r1',
    runId: 'run1',
    event,
  });
  const requested = progress({
    type: 'approval.requested',
    approvalId: 'a1',
    kind: 'tool',
    agentId: 'g1',
    tool: 'calculator',
    input: { expression: '1+1' },
    cost: null,
    expiresAt: '2026-01-02T00:00:00.000Z',
  });

  test('keeps the shown steps in order, each once; bookkeeping ones are left out', () => {
    const s = play(emptyState, [
      ...stream,
      ['5', progress({ type: 'step.started', step: 1, agentId: 'g1' })],
      ['6', progress({ type: 'tool.called', tool: 'calculator', input: { expression: '1+1' } })],
      ['7', progress({ type: 'tool.result', tool: 'calculator', output: { result: 2 } })],
      // A replay of an applied event changes nothing.
      ['7', progress({ type: 'tool.result', tool: 'calculator', output: { result: 2 } })],
    ]);
    expect(s.steps.r1).toEqual({
      runId: 'run1',
      steps: [
        { type: 'tool.called', tool: 'calculator', input: { expression: '1+1' } },
        { type: 'tool.result', tool: 'calculator', output: { result: 2 } },
      ],
    });
  });

  test('an approval is pending until its decision arrives', () => {
    const waiting = play(emptyState, [...stream, ['5', requested]]);
    expect(pendingApprovals(waiting.steps.r1).map((a) => a.approvalId)).toEqual(['a1']);
    const decided = play(waiting, [
      [
        '6',
        progress({
          type: 'approval.decided',
          approvalId: 'a1',
          decision: 'approved',
          by: 'u1',
          note: null,
        }),
      ],
    ]);
    expect(pendingApprovals(decided.steps.r1)).toEqual([]);
    expect(pendingApprovals(undefined)).toEqual([]);
  });

  test('a reload keeps the steps of replies still shown', () => {
    const s = play(emptyState, [...stream, ['5', requested]]);
    const reply = message('r1', { status: 'streaming' });
    const start = resumePoint([question, reply], {
      lastEventId: '5',
      drafts: { r1: 'Echo: hi' },
      steps: { ...s.steps, gone: { runId: 'x', steps: [] } },
    });
    expect(start.lastEventId).toBe('5');
    expect(Object.keys(start.steps)).toEqual(['r1']);
  });
});
