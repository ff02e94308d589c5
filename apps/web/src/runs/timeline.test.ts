import { describe, expect, it } from 'vitest';
import {
  applyRunEvent,
  emptyTimeline,
  type Run,
  type RunEventData,
  type Timeline,
  timelineFromRun,
  totals,
  withDurations,
} from './timeline';

const A = '00000000-0000-4000-8000-00000000000a';
const B = '00000000-0000-4000-8000-00000000000b';

/** Applies events with ids 1, 2, 3, … */
function play(events: RunEventData[], from: Timeline = emptyTimeline, firstId = 1): Timeline {
  return events.reduce((s, e, i) => applyRunEvent(s, String(firstId + i), e), from);
}

const workflow: RunEventData[] = [
  { type: 'run.started' },
  { type: 'step.started', step: 0, agentId: A },
  { type: 'text.delta', text: 'Let me ' },
  { type: 'text.delta', text: 'compute.' },
  { type: 'usage', inputTokens: 10, outputTokens: 4, cost: '0.000120' },
  { type: 'tool.called', tool: 'calculator', input: { expression: '6 * 7' } },
  { type: 'tool.result', tool: 'calculator', output: { result: 42 } },
  { type: 'handoff', fromAgentId: A, toAgentId: B },
  { type: 'step.started', step: 3, agentId: B },
  { type: 'text.delta', text: '{"answer": 42}' },
  { type: 'usage', inputTokens: 20, outputTokens: 6, cost: '0.00003' },
  { type: 'run.completed', output: { answer: 42 } },
];

describe('applyRunEvent', () => {
  it('builds the step timeline: model, tool with input and result, handoff, output', () => {
    const s = play(workflow);
    expect(s.status).toBe('succeeded');
    expect(s.activeAgentId).toBe(B);
    expect(s.output).toEqual({ answer: 42 });
    expect(s.lastEventId).toBe('12');
    expect(s.entries.map((e) => e.kind)).toEqual(['model', 'tool', 'handoff', 'model']);
    expect(s.entries[0]).toMatchObject({
      agentId: A,
      step: 0,
      text: 'Let me compute.',
      usage: { inputTokens: 10, outputTokens: 4, cost: '0.000120' },
    });
    expect(s.entries[1]).toMatchObject({
      tool: 'calculator',
      input: { expression: '6 * 7' },
      output: { result: 42 },
      isError: false,
    });
    expect(s.entries[3]).toMatchObject({ agentId: B, text: '{"answer": 42}' });
    expect(totals(s.entries)).toEqual({ inputTokens: 30, outputTokens: 10, cost: '0.00015' });
  });

  it('applies each event once: a replay from an older id repeats nothing', () => {
    const once = play(workflow.slice(0, 6));
    // A reload resumes after id 6 but the server replays from 3 (e.g. two tabs' ids).
    const replayed = play(workflow.slice(2), once, 3);
    expect(replayed).toEqual(play(workflow));
    expect(applyRunEvent(replayed, '12', { type: 'text.delta', text: 'x' })).toBe(replayed);
    // Ids compare as numbers, not text: "10" is after "9".
    const nine = play(workflow.slice(0, 9));
    expect(applyRunEvent(nine, '10', workflow[9] as RunEventData).lastEventId).toBe('10');
  });

  it('a tool result marks the matching call still running; errors are flagged', () => {
    const s = play([
      { type: 'step.started', step: 0, agentId: A },
      { type: 'tool.called', tool: 'calculator', input: { expression: '1/0' } },
      { type: 'tool.called', tool: 'search_documents', input: { query: 'x' } },
      { type: 'tool.result', tool: 'calculator', output: 'division by zero', isError: true },
    ]);
    expect(s.entries[1]).toMatchObject({
      tool: 'calculator',
      output: 'division by zero',
      isError: true,
    });
    expect('output' in (s.entries[2] ?? {})).toBe(false);
  });

  it('failure and cancellation end the run; unknown events are kept generically', () => {
    const failed = play([
      { type: 'run.started' },
      { type: 'approval.requested', approvalId: 'x', tool: 'calculator' },
      { type: 'run.failed', appCode: 'run.max_steps', message: 'Too many steps' },
    ]);
    expect(failed.status).toBe('failed');
    expect(failed.error).toEqual({ appCode: 'run.max_steps', message: 'Too many steps' });
    expect(failed.entries).toEqual([
      {
        kind: 'event',
        type: 'approval.requested',
        payload: { approvalId: 'x', tool: 'calculator' },
      },
    ]);
    expect(play([{ type: 'run.cancelled' }]).status).toBe('cancelled');
  });
});

function step(over: Partial<Run['steps'][number]>): Run['steps'][number] {
  return {
    id: crypto.randomUUID(),
    index: 0,
    agentId: A,
    kind: 'model',
    input: null,
    output: null,
    error: null,
    usage: { inputTokens: 0, outputTokens: 0 },
    cost: '0',
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:00:01.000Z',
    durationMs: 1000,
    ...over,
  } as Run['steps'][number];
}

const steps = [
  step({
    index: 0,
    output: {
      text: 'Let me compute.',
      toolCalls: [
        { name: 'calculator', input: { expression: '6 * 7' } },
        { name: 'handoff_to_reporter', input: {} },
      ],
    },
    usage: { inputTokens: 10, outputTokens: 4 },
    cost: '0.00012',
    durationMs: 120,
  }),
  step({
    index: 1,
    kind: 'tool',
    input: { expression: '6 * 7' },
    output: { result: 42 },
    durationMs: 3,
  }),
  step({ index: 2, kind: 'handoff', output: { toAgentId: B }, durationMs: 1 }),
  step({ index: 3, agentId: B, output: { text: '{"answer": 42}', toolCalls: [] }, durationMs: 80 }),
];

describe('timelineFromRun', () => {
  it('rebuilds a finished run from its stored steps, naming each tool from its model step', () => {
    const run = {
      status: 'succeeded',
      activeAgentId: B,
      output: { answer: 42 },
      error: null,
      steps,
    } as unknown as Run;
    const s = timelineFromRun(run);
    expect(s.entries.map((e) => e.kind)).toEqual(['model', 'tool', 'handoff', 'model']);
    expect(s.entries[0]).toMatchObject({
      text: 'Let me compute.',
      usage: { cost: '0.00012' },
      durationMs: 120,
    });
    expect(s.entries[1]).toMatchObject({
      tool: 'calculator',
      output: { result: 42 },
      isError: false,
    });
    expect(s.entries[2]).toMatchObject({ fromAgentId: A, toAgentId: B });
    expect(s.status).toBe('succeeded');
    expect(s.lastEventId).toBeNull();
  });
});

describe('withDurations', () => {
  it('takes each entry’s duration from the stored step of the same kind and rank', () => {
    const live = play(workflow).entries;
    const merged = withDurations(live, steps);
    expect(merged.map((e) => (e.kind === 'event' ? null : e.durationMs))).toEqual([120, 3, 1, 80]);
    // Steps not stored yet leave the entry as it was.
    expect(withDurations(live, steps.slice(0, 1))[1]).toBe(live[1]);
  });
});
