import type { RouterOutputs } from '@smartspace/client';
import { isAfter } from '../chat/state';
import { fromMicro, toMicro } from '../usage/money';

export type Run = RouterOutputs['runs']['get'];
export type StoredStep = Run['steps'][number];
export type RunStatus = Run['status'];

/** A progress event as runs.onProgress delivers it; types this page does not know included. */
export interface RunEventData {
  type: string;
  [field: string]: unknown;
}

export interface Usage {
  inputTokens: number;
  outputTokens: number;
  cost: string;
}

/** One line of the step timeline. */
export type Entry =
  | {
      kind: 'model';
      step: number | null;
      agentId: string;
      text: string;
      usage: Usage | null;
      durationMs: number | null;
    }
  | {
      kind: 'tool';
      tool: string;
      input: unknown;
      /** undefined while the tool runs. */
      output?: unknown;
      isError: boolean;
      durationMs: number | null;
    }
  | { kind: 'handoff'; fromAgentId: string; toAgentId: string; durationMs: number | null }
  /** An event this page has no special view for (e.g. approvals): shown as it came. */
  | { kind: 'event'; type: string; payload: Record<string, unknown> };

/**
 * A run's timeline as the console shows it. Every event is applied at most once (ids only
 * grow), so replaying from an older id after a reload or a reconnect repeats nothing.
 */
export interface Timeline {
  lastEventId: string | null;
  status: RunStatus;
  activeAgentId: string | null;
  entries: Entry[];
  output: unknown;
  error: { appCode: string; message: string } | null;
}

export const emptyTimeline: Timeline = {
  lastEventId: null,
  status: 'queued',
  activeAgentId: null,
  entries: [],
  output: null,
  error: null,
};

export const FINISHED: readonly RunStatus[] = ['succeeded', 'failed', 'cancelled'];

export function isFinished(status: RunStatus): boolean {
  return FINISHED.includes(status);
}

function lastIndex(entries: Entry[], match: (e: Entry) => boolean): number {
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i];
    if (e && match(e)) return i;
  }
  return -1;
}

/** `entries` with the entry at `i` replaced by `update(entry)`; unchanged when i is -1. */
function patch(entries: Entry[], i: number, update: (e: Entry) => Entry): Entry[] {
  const e = entries[i];
  if (!e) return entries;
  const next = entries.slice();
  next[i] = update(e);
  return next;
}

const str = (v: unknown) => (typeof v === 'string' ? v : '');

export function applyRunEvent(state: Timeline, id: string, event: RunEventData): Timeline {
  if (!isAfter(id, state.lastEventId)) return state;
  const next: Timeline = { ...state, lastEventId: id };
  const { entries } = state;
  switch (event.type) {
    case 'run.started':
      return { ...next, status: 'running' };
    case 'step.started': {
      const agentId = str(event.agentId);
      const step = typeof event.step === 'number' ? event.step : null;
      const entry: Entry = {
        kind: 'model',
        step,
        agentId,
        text: '',
        usage: null,
        durationMs: null,
      };
      return { ...next, status: 'running', activeAgentId: agentId, entries: [...entries, entry] };
    }
    case 'text.delta': {
      const i = lastIndex(entries, (e) => e.kind === 'model');
      const text = str(event.text);
      return {
        ...next,
        entries: patch(entries, i, (e) => (e.kind === 'model' ? { ...e, text: e.text + text } : e)),
      };
    }
    case 'tool.called': {
      const entry: Entry = {
        kind: 'tool',
        tool: str(event.tool),
        input: event.input,
        isError: false,
        durationMs: null,
      };
      return { ...next, entries: [...entries, entry] };
    }
    case 'tool.result': {
      const i = lastIndex(
        entries,
        (e) => e.kind === 'tool' && e.tool === event.tool && !('output' in e),
      );
      return {
        ...next,
        entries: patch(entries, i, (e) => ({
          ...e,
          output: event.output ?? null,
          isError: event.isError === true,
        })),
      };
    }
    case 'handoff': {
      const entry: Entry = {
        kind: 'handoff',
        fromAgentId: str(event.fromAgentId),
        toAgentId: str(event.toAgentId),
        durationMs: null,
      };
      return { ...next, activeAgentId: entry.toAgentId, entries: [...entries, entry] };
    }
    case 'usage': {
      const i = lastIndex(entries, (e) => e.kind === 'model' && e.usage === null);
      const usage: Usage = {
        inputTokens: Number(event.inputTokens) || 0,
        outputTokens: Number(event.outputTokens) || 0,
        cost: str(event.cost) || '0',
      };
      return { ...next, entries: patch(entries, i, (e) => ({ ...e, usage })) };
    }
    case 'run.completed':
      return { ...next, status: 'succeeded', output: event.output ?? null };
    case 'run.failed':
      return {
        ...next,
        status: 'failed',
        error: { appCode: str(event.appCode), message: str(event.message) },
      };
    case 'run.cancelled':
      return { ...next, status: 'cancelled' };
    default: {
      const { type, ...payload } = event;
      return { ...next, entries: [...entries, { kind: 'event', type, payload }] };
    }
  }
}

const HANDOFF_PREFIX = 'handoff_to_';

interface ToolCall {
  name: string;
  input: unknown;
}

function toolCallsOf(output: unknown): ToolCall[] {
  const calls = (output as { toolCalls?: unknown } | null)?.toolCalls;
  return Array.isArray(calls) ? (calls as ToolCall[]) : [];
}

/**
 * The timeline of a run read from runs.get (a finished run, or one whose events expired).
 * A stored tool step does not name its tool: it is the next non-handoff call its model step
 * asked for, in order.
 */
export function timelineFromRun(run: Run): Timeline {
  const entries: Entry[] = [];
  let pendingTools: string[] = [];
  for (const s of run.steps) {
    if (s.kind === 'model') {
      const output = s.output as { text?: unknown } | null;
      pendingTools = toolCallsOf(s.output)
        .map((c) => c.name)
        .filter((n) => !n.startsWith(HANDOFF_PREFIX));
      entries.push({
        kind: 'model',
        step: s.index,
        agentId: s.agentId,
        text: str(output?.text),
        usage: { ...s.usage, cost: s.cost },
        durationMs: s.durationMs,
      });
    } else if (s.kind === 'tool') {
      entries.push({
        kind: 'tool',
        tool: pendingTools.shift() ?? 'tool',
        input: s.input,
        output: s.error ?? s.output,
        isError: s.error !== null,
        durationMs: s.durationMs,
      });
    } else {
      const to = (s.output as { toAgentId?: unknown } | null)?.toAgentId;
      entries.push({
        kind: 'handoff',
        fromAgentId: s.agentId,
        toAgentId: str(to),
        durationMs: s.durationMs,
      });
    }
  }
  return {
    lastEventId: null,
    status: run.status,
    activeAgentId: run.activeAgentId,
    entries,
    output: run.output,
    error: run.error,
  };
}

/**
 * Durations come with the stored steps (events carry no times): the k-th model, tool and
 * handoff entry of the timeline is the k-th stored step of that kind.
 */
export function withDurations(entries: Entry[], steps: readonly StoredStep[]): Entry[] {
  const byKind: Record<string, StoredStep[]> = { model: [], tool: [], handoff: [] };
  for (const s of steps) byKind[s.kind]?.push(s);
  const seen: Record<string, number> = { model: 0, tool: 0, handoff: 0 };
  return entries.map((e) => {
    if (e.kind === 'event') return e;
    const n = seen[e.kind] ?? 0;
    seen[e.kind] = n + 1;
    const stored = byKind[e.kind]?.[n];
    if (!stored || e.durationMs === stored.durationMs) return e;
    return { ...e, durationMs: stored.durationMs };
  });
}

// A reload resumes the timeline after the last event it applied (sessionStorage: per tab).
const key = (runId: string) => `smartspace.run.${runId}`;

export function saveTimeline(runId: string, state: Timeline): void {
  if (state.lastEventId === null) return;
  try {
    sessionStorage.setItem(key(runId), JSON.stringify(state));
  } catch {
    // Storage full or denied: a reload replays the run's events from the start.
  }
}

export function loadTimeline(runId: string): Timeline | null {
  try {
    const raw = sessionStorage.getItem(key(runId));
    return raw ? (JSON.parse(raw) as Timeline) : null;
  } catch {
    return null;
  }
}

export function clearTimeline(runId: string): void {
  try {
    sessionStorage.removeItem(key(runId));
  } catch {
    // nothing saved
  }
}

/** Total tokens and cost of the model steps seen so far. */
export function totals(entries: Entry[]): Usage {
  let inputTokens = 0;
  let outputTokens = 0;
  let micro = 0n;
  for (const e of entries) {
    if (e.kind !== 'model' || !e.usage) continue;
    inputTokens += e.usage.inputTokens;
    outputTokens += e.usage.outputTokens;
    micro += toMicro(e.usage.cost);
  }
  return { inputTokens, outputTokens, cost: fromMicro(micro) };
}
