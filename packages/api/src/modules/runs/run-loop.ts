import type { ChatTurn, ContentBlock } from '../../ai/provider';
import { classifyFailure } from '../../lib/failure';
import { formatUsdc } from '../../lib/money';
import { inSpan } from '../../lib/tracing';
import { startHeartbeat } from '../../lib/worker';
import type { AgentRow } from '../agents/agents.service';
import type { GatewayCall } from '../gateway/gateway';
import {
  type ApprovalRequest,
  AwaitingApproval,
  decisionsFor,
  pauseForApproval,
} from './approvals';
import { knowChatLink } from './chat-mirror';
import { modelStep, stepCall, type ToolUse } from './model-step';
import { loadRunAgents, type RunAgents } from './run-agents';
import { openRunContext, type RunContext, type RunLoopDeps } from './run-context';
import { RUN_FAILED, RunFailure } from './run-failure';
import { finalOutput } from './run-output';
import {
  type ClaimedRun,
  commitRound,
  finishRun,
  RunLost,
  type RunProgress,
  requeueRun,
  touchRun,
} from './run-store';
import type { RunEvent } from './runs.dto';
import type { RunFailureCode } from './runs.errors';
import { toolStep } from './tool-step';

const HEARTBEAT_MS = 5_000;
const DEFAULT_MAX_STEPS = 10;

/** How a run treats steps that wait for a person (approvals.ts). */
export interface ApprovalSettings {
  /** How long an approval waits before it expires and fails its run. */
  ttlMs: number;
}

/**
 * Executes a claimed run: the tool-use loop through the gateway, every step persisted and
 * every progress event published to the run's topic. Each round (a model step and the tool
 * steps it asked for) is committed in one transaction with the transcript, so a run whose
 * process died is resumed from its last completed round.
 */
export function executeRun(
  deps: RunLoopDeps,
  run: ClaimedRun,
  signal: AbortSignal,
  approvals: ApprovalSettings,
) {
  // A span per execution (a resumed run has one per process that ran it), parent of its steps.
  return inSpan(
    'run',
    { 'smartspace.run_id': run.id, 'smartspace.project_id': run.projectId },
    async () => {
      knowChatLink(run);
      const ctx = openRunContext(deps, run, signal);
      const stopHeartbeat = startHeartbeat(() => touchRun(deps.db, run.id), HEARTBEAT_MS);
      try {
        // Goes out with the first step.started (or with the run's end, if it never gets there).
        ctx.events.push({ type: 'run.started' }, 'deferred');
        await driveRun(ctx);
      } catch (err) {
        if (err instanceof AwaitingApproval) {
          await pause(ctx, err.requests, approvals).catch((e: unknown) => settleFailure(ctx, e));
        } else {
          await settleFailure(ctx, err);
        }
      } finally {
        stopHeartbeat();
      }
    },
  );
}

/** A step in its span, its duration told to the metrics. */
async function observedStep<T>(
  ctx: RunContext,
  kind: 'model' | 'tool',
  attributes: Record<string, string>,
  run: () => Promise<T>,
): Promise<T> {
  const started = performance.now();
  try {
    return await inSpan('run.step', attributes, run);
  } finally {
    ctx.deps.observe?.runStep?.(kind, (performance.now() - started) / 1000);
  }
}

/** Model steps until a final answer that fits the output schema; throws RunFailure otherwise. */
async function driveRun(ctx: RunContext) {
  const { deps, run, signal, progress } = ctx;
  const first = await loadRunAgents(
    deps.db,
    run.projectId,
    progress.activeAgentId,
    run.agentId,
    run.agents,
  );
  const maxSteps = first.root?.maxSteps ?? DEFAULT_MAX_STEPS;
  let agents: RunAgents = first;
  // Whether `agents` is still what the database holds (checked by each round's commit).
  let current = true;
  let modelSteps = 0;
  let corrected = false;
  // A round stored while it waited for approval: its tool calls are answered first.
  const waiting = pendingRound(progress.transcript);
  if (waiting) {
    await answerTools(ctx, agents.agent, agents.targets, waiting);
    current = await commit(ctx, agents);
  }
  for (;;) {
    if (signal.aborted) throw new RunFailure('run.cancelled', 'cancelled');
    if (!current || agents.agent.id !== progress.activeAgentId) {
      agents = await loadRunAgents(deps.db, run.projectId, progress.activeAgentId);
    }
    if (modelSteps >= maxSteps) {
      throw new RunFailure('run.max_steps', `The run reached its limit of ${maxSteps} model steps`);
    }
    modelSteps++;
    const { agent, targets } = agents;
    const outcome = await observedStep(
      ctx,
      'model',
      { 'smartspace.step_kind': 'model', 'smartspace.agent_id': agent.id },
      async () => {
        const call = await stepCall(ctx, agent, targets);
        await checkCostApproval(ctx, agent, call);
        return modelStep(ctx, agent, call);
      },
    );
    progress.inputTokens += outcome.usage.inputTokens;
    progress.outputTokens += outcome.usage.outputTokens;
    progress.cost += outcome.cost;
    if (outcome.toolUses.length > 0) {
      progress.transcript.push({
        role: 'assistant',
        content: [
          ...(outcome.text ? [{ type: 'text' as const, text: outcome.text }] : []),
          ...outcome.toolUses.map((t) => ({
            type: 'tool_use' as const,
            id: t.id,
            name: t.name,
            input: t.input,
          })),
        ],
      });
      await answerTools(ctx, agent, targets, {
        turn: progress.transcript.length - 1,
        uses: outcome.toolUses,
      });
      current = await commit(ctx, agents);
      continue;
    }
    progress.transcript.push({ role: 'assistant', content: outcome.text });
    const verdict = finalOutput(agent, outcome.text);
    if (verdict.ok) {
      const { output } = verdict;
      await Promise.all([ctx.events.settle(), ctx.settled()]);
      await finishRun(
        deps,
        run.id,
        { status: 'succeeded', output, ...progress },
        { type: 'run.completed', output },
        pendingWrites(ctx),
      );
      deps.observe?.runFinished?.('succeeded');
      return;
    }
    if (corrected) {
      throw new RunFailure(
        'run.output_invalid',
        `The final answer does not match the output schema: ${verdict.problem}`,
      );
    }
    // One chance to correct itself.
    corrected = true;
    progress.transcript.push({
      role: 'user',
      content: `Your answer does not match the required JSON Schema (${verdict.problem}). Reply with only a JSON document that matches it.`,
    });
    current = await commit(ctx, agents);
  }
}

/** The round's steps and events not yet stored, taken for the transaction that stores them. */
function pendingWrites(ctx: RunContext): {
  steps: ReturnType<RunContext['takeSteps']>;
  events: RunEvent[];
} {
  return { steps: ctx.takeSteps(), events: ctx.events.take() };
}

/** Commits the round; true when the agents it used are unchanged (no re-read needed). */
async function commit(ctx: RunContext, agents: RunAgents): Promise<boolean> {
  await ctx.events.settle();
  const stamp = await commitRound(ctx.deps, ctx.run.id, {
    ...pendingWrites(ctx),
    progress: ctx.progress,
    watch: agents.watch,
  });
  return stamp === agents.stamp;
}

/**
 * A model step whose worst case (the reservation it would hold) passes the policy's
 * approvalCostThreshold waits for a person first; rejected, the run fails run.rejected (the
 * model has no turn to be told in). Keyed by the transcript's length: the step it is about
 * to take.
 */
async function checkCostApproval(ctx: RunContext, agent: AgentRow, call: GatewayCall) {
  const priced = await ctx.deps.gateway.worstCase(call);
  if (!priced || priced.approvalThreshold === null || priced.worst <= priced.approvalThreshold) {
    return;
  }
  const stepKey = `model:${ctx.progress.transcript.length}`;
  const decision = (await decisionsFor(ctx.deps.db, ctx.run.id, [stepKey])).get(stepKey);
  if (!decision || decision.status === 'pending') {
    throw new AwaitingApproval([
      {
        stepKey,
        kind: 'model',
        agentId: agent.id,
        tool: null,
        input: { model: call.model, maxOutputTokens: call.maxOutputTokens },
        cost: priced.worst,
      },
    ]);
  }
  if (decision.status !== 'approved') {
    throw new RunFailure(
      'run.rejected',
      `A person rejected a model step that could cost up to ${formatUsdc(priced.worst)} USDC${decision.note ? `: ${decision.note}` : ''}`,
    );
  }
}

/** Tool calls of one assistant turn (its index in the transcript) not yet answered. */
interface ToolRound {
  turn: number;
  uses: ToolUse[];
}

/**
 * The round a run paused in: the transcript ends with the assistant's tool calls, not yet
 * answered (a finished round ends with their results, a finished run with text).
 */
function pendingRound(transcript: ChatTurn[]): ToolRound | null {
  const turn = transcript.length - 1;
  const last = transcript[turn];
  if (last?.role !== 'assistant' || typeof last.content === 'string') return null;
  const uses = last.content.flatMap((b) =>
    b.type === 'tool_use' ? [{ id: b.id, name: b.name, input: b.input }] : [],
  );
  return uses.length > 0 ? { turn, uses } : null;
}

/** Names a tool call within its run: model ids need not be unique across turns. */
const toolStepKey = (round: ToolRound, use: ToolUse) => `tool:${round.turn}:${use.id}`;

/**
 * Answers the round's tool calls and hands the results back as one turn. Calls of tools the
 * agent marks requiresApproval wait for a decision: while any is undecided, nothing of the
 * round runs and AwaitingApproval is thrown (the run pauses); a rejected call goes back to the
 * model as a tool error, so it can choose another way.
 */
async function answerTools(
  ctx: RunContext,
  agent: AgentRow,
  targets: AgentRow[],
  round: ToolRound,
) {
  const { progress } = ctx;
  const gated = round.uses.filter((u) => agent.requiresApproval.includes(u.name));
  const decisions = await decisionsFor(
    ctx.deps.db,
    ctx.run.id,
    gated.map((u) => toolStepKey(round, u)),
  );
  const undecided: ApprovalRequest[] = gated
    .filter((u) => (decisions.get(toolStepKey(round, u))?.status ?? 'pending') === 'pending')
    .map((u) => ({
      stepKey: toolStepKey(round, u),
      kind: 'tool',
      agentId: agent.id,
      tool: u.name,
      input: u.input,
      cost: null,
    }));
  if (undecided.length > 0) throw new AwaitingApproval(undecided);
  const results: ContentBlock[] = [];
  for (const use of round.uses) {
    const decision = decisions.get(toolStepKey(round, use));
    const result =
      decision && decision.status !== 'approved'
        ? rejected(ctx, agent, use, decision.note)
        : await observedStep(
            ctx,
            'tool',
            {
              'smartspace.step_kind': 'tool',
              'smartspace.tool': use.name,
              'smartspace.agent_id': agent.id,
            },
            () => toolStep(ctx, agent, targets, use),
          );
    if (result.handoffTo) progress.activeAgentId = result.handoffTo;
    results.push({
      type: 'tool_result',
      toolUseId: use.id,
      content: result.content,
      isError: result.isError,
    });
  }
  progress.transcript.push({ role: 'user', content: results });
}

/** A call a person rejected: recorded as a failed tool step, told to the model as an error. */
function rejected(ctx: RunContext, agent: AgentRow, use: ToolUse, note: string | null) {
  const error = `A person rejected this call of ${use.name}${note ? `: ${note}` : ''}. Do not retry it; choose another way.`;
  const at = new Date();
  ctx.events.push(
    { type: 'tool.result', tool: use.name, output: error, isError: true },
    'deferred',
  );
  ctx.recordStep({
    agentId: agent.id,
    kind: 'tool',
    input: use.input,
    output: null,
    error,
    startedAt: at,
    finishedAt: at,
  });
  return { content: error, isError: true, handoffTo: undefined };
}

/**
 * Stores the round so far (the model step and the assistant's calls) with the approvals it
 * waits for, and leaves the run 'awaiting_approval': this execution ends, holding nothing.
 */
async function pause(ctx: RunContext, requests: ApprovalRequest[], settings: ApprovalSettings) {
  const { deps, run } = ctx;
  await Promise.all([ctx.events.settle(), ctx.settled()]);
  const stored = await pauseForApproval(deps, {
    runId: run.id,
    projectId: run.projectId,
    progress: ctx.progress,
    ...pendingWrites(ctx),
    requests,
    ttlMs: settings.ttlMs,
  });
  if (!stored) deps.log.warn({ runId: run.id }, 'run taken over elsewhere; this execution stops');
}

async function settleFailure(ctx: RunContext, err: unknown) {
  const { deps, run, signal, progress } = ctx;
  // Whatever is in flight lands before the run's last writes (or is dropped with the round),
  // the settlements of its model calls included.
  await Promise.all([ctx.events.idle(), ctx.settled()]);
  if (err instanceof RunLost) {
    // A sweeper took the run (its heartbeat looked stale): whoever has it now finishes it.
    deps.log.warn({ runId: run.id }, 'run taken over elsewhere; this execution stops');
    return;
  }
  const failure = classifyFailure<RunFailureCode>(err, signal, RUN_FAILED);
  if (failure.kind === 'shutdown') {
    // Another instance (or this one after a restart) resumes from the last committed round;
    // this round's uncommitted steps and events are redone there.
    await requeueRun(deps.db, run.id, {});
    return;
  }
  // The active agent stays where it was last saved.
  const { transcript, inputTokens, outputTokens, cost } = progress;
  const kept: Omit<RunProgress, 'activeAgentId'> = { transcript, inputTokens, outputTokens, cost };
  // Steps and events of the unfinished round are stored with the run's end.
  const ending = pendingWrites(ctx);
  if (failure.kind === 'cancelled') {
    await finishRun(
      deps,
      run.id,
      { status: 'cancelled', ...kept },
      { type: 'run.cancelled' },
      ending,
    );
    deps.observe?.runFinished?.('cancelled');
    return;
  }
  const { appCode, message } = failure;
  if (failure.unexpected) deps.log.error({ err, runId: run.id }, 'run failed');
  await finishRun(
    deps,
    run.id,
    { status: 'failed', error: { appCode, message }, ...kept },
    { type: 'run.failed', appCode, message },
    ending,
  );
  deps.observe?.runFinished?.('failed');
}
