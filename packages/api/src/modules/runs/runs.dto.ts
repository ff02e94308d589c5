import { formatUsdc } from '../../lib/money';
import type { RunErrorCode } from './runs.errors';
import type { RunApprovalRow, RunRow, RunStepRow } from './runs.table';

export interface Run {
  id: string;
  projectId: string;
  agentId: string;
  activeAgentId: string;
  status: 'queued' | 'running' | 'awaiting_approval' | 'succeeded' | 'failed' | 'cancelled';
  input: string;
  output: unknown;
  error: { appCode: RunErrorCode; message: string } | null;
  usage: { inputTokens: number; outputTokens: number };
  cost: string;
  idempotencyKey: string | null;
  createdBy: string | null;
  /** The API key that started it, or null when a person did. */
  createdByKey: string | null;
  /** A run writing a reply in a conversation with its agent: the conversation and reply. */
  conversationId: string | null;
  replyId: string | null;
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

/** A step waiting for (or given) a person's decision. */
export interface RunApproval {
  id: string;
  runId: string;
  /** 'tool': a call of a tool the agent marks requiresApproval; 'model': a costly model step. */
  kind: 'tool' | 'model';
  agentId: string;
  tool: string | null;
  input: unknown;
  /** The step's worst-case cost in USDC (model steps), or null. */
  cost: string | null;
  status: 'pending' | 'approved' | 'rejected' | 'expired' | 'cancelled';
  requestedAt: string;
  expiresAt: string;
  decidedBy: string | null;
  decidedAt: string | null;
  note: string | null;
}

export function toApproval(r: RunApprovalRow): RunApproval {
  return {
    id: r.id,
    runId: r.runId,
    kind: r.kind,
    agentId: r.agentId,
    tool: r.tool,
    input: r.input ?? null,
    cost: r.cost === null ? null : formatUsdc(r.cost),
    status: r.status,
    requestedAt: r.requestedAt.toISOString(),
    expiresAt: r.expiresAt.toISOString(),
    decidedBy: r.decidedBy,
    decidedAt: r.decidedAt?.toISOString() ?? null,
    note: r.note,
  };
}

/**
 * Fields typed `unknown` are optional: a value that is `undefined` does not survive JSON, so
 * that is what a client may receive.
 */
export type RunEvent =
  | { type: 'run.started' }
  | { type: 'step.started'; step: number; agentId: string }
  | { type: 'text.delta'; text: string }
  | { type: 'tool.called'; tool: string; input?: unknown }
  | { type: 'tool.result'; tool: string; output?: unknown; isError?: boolean }
  | { type: 'handoff'; fromAgentId: string; toAgentId: string }
  | { type: 'usage'; inputTokens: number; outputTokens: number; cost: string }
  | {
      type: 'approval.requested';
      approvalId: string;
      kind: 'tool' | 'model';
      agentId: string;
      tool: string | null;
      input?: unknown;
      cost: string | null;
      expiresAt: string;
    }
  | {
      type: 'approval.decided';
      approvalId: string;
      decision: 'approved' | 'rejected';
      by: string;
      note: string | null;
    }
  | { type: 'run.completed'; output?: unknown }
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
    conversationId: r.conversationId,
    replyId: r.replyId,
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
