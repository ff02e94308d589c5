import type { ContentBlock } from '../../ai/provider';
import { classifyFailure } from '../../lib/failure';
import { startHeartbeat } from '../../lib/worker';
import { type AgentRow, activeAgentsAmong, findAgentRow } from '../agents/agents.service';
import { type ModelOutcome, modelStep } from './model-step';
import { openRunContext, type RunContext, type RunLoopDeps } from './run-context';
import { RUN_FAILED, RunFailure } from './run-failure';
import { finalOutput } from './run-output';
import { finishRun, publishRunEvent, requeueRun, saveProgress, touchRun } from './run-store';
import type { RunFailureCode } from './runs.errors';
import type { RunRow } from './runs.table';
import { toolStep } from './tool-step';

const HEARTBEAT_MS = 5_000;
const DEFAULT_MAX_STEPS = 10;

/**
 * Executes a claimed run: the tool-use loop through the gateway, every step persisted and
 * every progress event published to the run's topic. The transcript is saved after each
 * step, so a run whose process died is resumed from its last completed step.
 */
export async function executeRun(deps: RunLoopDeps, run: RunRow, signal: AbortSignal) {
  const ctx = await openRunContext(deps, run, signal);
  const stopHeartbeat = startHeartbeat(() => touchRun(deps.db, run.id), HEARTBEAT_MS);
  try {
    await publishRunEvent(deps, run.id, { type: 'run.started' });
    await driveRun(ctx);
  } catch (err) {
    await settleFailure(ctx, err);
  } finally {
    stopHeartbeat();
  }
}

/** Model steps until a final answer that fits the output schema; throws RunFailure otherwise. */
async function driveRun(ctx: RunContext) {
  const { deps, run, signal, progress } = ctx;
  const entry = await findAgentRow(deps.db, run.agentId);
  const maxSteps = entry?.maxSteps ?? DEFAULT_MAX_STEPS;
  let modelSteps = 0;
  let corrected = false;
  for (;;) {
    if (signal.aborted) throw new RunFailure('run.cancelled', 'cancelled');
    const agent = await findAgentRow(deps.db, progress.activeAgentId);
    if (agent?.status !== 'active' || agent.projectId !== run.projectId) {
      throw new RunFailure('run.agent_unavailable', 'The active agent was deleted or deactivated');
    }
    if (modelSteps >= maxSteps) {
      throw new RunFailure('run.max_steps', `The run reached its limit of ${maxSteps} model steps`);
    }
    modelSteps++;
    const targets = await activeAgentsAmong(deps.db, run.projectId, agent.handoffs);
    const outcome = await modelStep(ctx, agent, targets);
    progress.inputTokens += outcome.usage.inputTokens;
    progress.outputTokens += outcome.usage.outputTokens;
    progress.cost += outcome.cost;
    if (outcome.toolUses.length > 0) {
      await toolRound(ctx, agent, targets, outcome);
      continue;
    }
    progress.transcript.push({ role: 'assistant', content: outcome.text });
    const verdict = finalOutput(agent, outcome.text);
    if (verdict.ok) {
      await saveProgress(deps.db, run.id, progress);
      const { output } = verdict;
      await finishRun(
        deps,
        run.id,
        { status: 'succeeded', output, ...progress },
        { type: 'run.completed', output },
      );
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
    await saveProgress(deps.db, run.id, progress);
  }
}

/** Records the model's tool calls, answers each, and hands the results back as one turn. */
async function toolRound(
  ctx: RunContext,
  agent: AgentRow,
  targets: AgentRow[],
  outcome: ModelOutcome,
) {
  const { progress } = ctx;
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
  const results: ContentBlock[] = [];
  for (const use of outcome.toolUses) {
    const result = await toolStep(ctx, agent, targets, use);
    if (result.handoffTo) progress.activeAgentId = result.handoffTo;
    results.push({
      type: 'tool_result',
      toolUseId: use.id,
      content: result.content,
      isError: result.isError,
    });
  }
  progress.transcript.push({ role: 'user', content: results });
  await saveProgress(ctx.deps.db, ctx.run.id, progress);
}

async function settleFailure(ctx: RunContext, err: unknown) {
  const { deps, run, signal, progress } = ctx;
  const failure = classifyFailure<RunFailureCode>(err, signal, RUN_FAILED);
  if (failure.kind === 'shutdown') {
    // Another instance (or this one after a restart) resumes from the last completed step.
    await requeueRun(deps.db, run.id, progress);
    return;
  }
  // The active agent stays where it was last saved.
  const { transcript, inputTokens, outputTokens, cost } = progress;
  const kept = { transcript, inputTokens, outputTokens, cost };
  if (failure.kind === 'cancelled') {
    await finishRun(deps, run.id, { status: 'cancelled', ...kept }, { type: 'run.cancelled' });
    return;
  }
  const { appCode, message } = failure;
  if (failure.unexpected) deps.log.error({ err, runId: run.id }, 'run failed');
  await finishRun(
    deps,
    run.id,
    { status: 'failed', error: { appCode, message }, ...kept },
    { type: 'run.failed', appCode, message },
  );
}
