import { formatUsdc } from '../../lib/money';
import type { RunErrorCode } from './runs.errors';
import type { RunRow, RunStepRow } from './runs.table';

export interface Run {
  id: string;
  projectId: string;
  agentId: string;
  activeAgentId: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  input: string;
  output: unknown;
  error: { appCode: RunErrorCode; message: string } | null;
  usage: { inputTokens: number; outputTokens: number };
  cost: string;
  idempotencyKey: string | null;
  createdBy: string | null;
  /** The API key that started it, or null when a person did. */
  createdByKey: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface RunStep {
  id: string;
  index: number;
  agentId: string;
  kind: 'model' | 'tool' | 'handoff';
  input: unknown;
  output: unknown;
  error: string | null;
  usage: { inputTokens: number; outputTokens: number };
  cost: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
}

export type RunEvent =
  | { type: 'run.started' }
  | { type: 'step.started'; step: number; agentId: string }
  | { type: 'text.delta'; text: string }
  | { type: 'tool.called'; tool: string; input: unknown }
  | { type: 'tool.result'; tool: string; output: unknown; isError?: boolean }
  | { type: 'handoff'; fromAgentId: string; toAgentId: string }
  | { type: 'usage'; inputTokens: number; outputTokens: number; cost: string }
  | { type: 'run.completed'; output: unknown }
  | { type: 'run.failed'; appCode: RunErrorCode; message: string }
  | { type: 'run.cancelled' };

export const runTopic = (runId: string) => `run:${runId}`;

export function toRun(r: RunRow): Run {
  return {
    id: r.id,
    projectId: r.projectId,
    agentId: r.agentId,
    activeAgentId: r.activeAgentId,
    status: r.status,
    input: r.input,
    output: r.output ?? null,
    error: r.error ?? null,
    usage: { inputTokens: r.inputTokens, outputTokens: r.outputTokens },
    cost: formatUsdc(r.cost),
    idempotencyKey: r.idempotencyKey,
    createdBy: r.createdBy,
    createdByKey: r.createdByKey,
    createdAt: r.createdAt.toISOString(),
    startedAt: r.startedAt?.toISOString() ?? null,
    finishedAt: r.finishedAt?.toISOString() ?? null,
  };
}

export function toStep(r: RunStepRow): RunStep {
  return {
    id: r.id,
    index: r.index,
    agentId: r.agentId,
    kind: r.kind,
    input: r.input ?? null,
    output: r.output ?? null,
    error: r.error,
    usage: { inputTokens: r.inputTokens, outputTokens: r.outputTokens },
    cost: formatUsdc(r.cost),
    startedAt: r.startedAt.toISOString(),
    finishedAt: r.finishedAt.toISOString(),
    durationMs: r.finishedAt.getTime() - r.startedAt.getTime(),
  };
}
