import { z } from 'zod';
import type { AgentRow } from '../agents/agents.service';
import { builtinTool, handoffToolName, ToolError } from '../agents/tools/registry';
import { runMcpTool } from '../mcp/mcp.tools';
import { isMcpToolName } from '../mcp/names';
import type { ToolUse } from './model-step';
import type { RunContext } from './run-context';

export interface ToolOutcome {
  content: string;
  isError: boolean;
  handoffTo?: string;
}

/** Answers one tool call: a handoff to another agent, a built-in tool or an MCP tool run. */
export async function toolStep(
  ctx: RunContext,
  agent: AgentRow,
  targets: AgentRow[],
  use: ToolUse,
): Promise<ToolOutcome> {
  const target = targets.find((t) => handoffToolName(t) === use.name);
  if (target) return handoff(ctx, agent, target, use);
  const startedAt = new Date();
  // Out while a slow tool runs; a quick one's call goes with its round. Its result is stored
  // with the round (run-loop.ts).
  ctx.events.push({ type: 'tool.called', tool: use.name, input: use.input }, 'soon');
  const { output, error, content } = await callTool(ctx, agent, targets, use);
  ctx.events.push(
    error
      ? { type: 'tool.result', tool: use.name, output: error, isError: true }
      : { type: 'tool.result', tool: use.name, output },
    'deferred',
  );
  ctx.recordStep({
    agentId: agent.id,
    kind: 'tool',
    input: use.input,
    output: error ? null : output,
    error,
    startedAt,
    finishedAt: new Date(),
  });
  // Errors go back to the model as tool errors: it may correct its input.
  return { content: error ?? content ?? JSON.stringify(output), isError: error !== null };
}

function handoff(ctx: RunContext, agent: AgentRow, target: AgentRow, use: ToolUse): ToolOutcome {
  const startedAt = new Date();
  ctx.events.push({ type: 'handoff', fromAgentId: agent.id, toAgentId: target.id }, 'deferred');
  ctx.recordStep({
    agentId: agent.id,
    kind: 'handoff',
    input: use.input,
    output: { toAgentId: target.id },
    startedAt,
    finishedAt: new Date(),
  });
  return { content: `Handed over to ${target.name}.`, isError: false, handoffTo: target.id };
}

interface CallResult {
  output: unknown;
  error: string | null;
  /** What the model reads, when it is not the output's JSON (an MCP tool's text). */
  content?: string | undefined;
}

async function callTool(
  ctx: RunContext,
  agent: AgentRow,
  targets: AgentRow[],
  use: ToolUse,
): Promise<CallResult> {
  if (agent.tools.includes(use.name) && isMcpToolName(use.name)) {
    const { deps, run } = ctx;
    return runMcpTool({
      db: deps.db,
      runtime: deps.mcp,
      log: deps.log,
      projectId: run.projectId,
      runId: run.id,
      name: use.name,
      input: use.input,
      signal: ctx.signal,
    });
  }
  const tool = agent.tools.includes(use.name) ? builtinTool(use.name) : undefined;
  if (!tool) {
    const available = [...agent.tools, ...targets.map(handoffToolName)].join(', ') || 'none';
    return { output: undefined, error: `Unknown tool "${use.name}". Available: ${available}` };
  }
  const parsed = tool.input.safeParse(use.input);
  if (!parsed.success) {
    return {
      output: undefined,
      error: `Invalid input for ${use.name}: ${z.prettifyError(parsed.error)}`,
    };
  }
  const { deps, run } = ctx;
  try {
    const output = await tool.run(parsed.data, {
      db: deps.db,
      projectId: run.projectId,
      runId: run.id,
    });
    return { output, error: null };
  } catch (e) {
    if (!(e instanceof ToolError)) {
      deps.log.error({ err: e, tool: use.name, runId: run.id }, 'tool failed');
    }
    return {
      output: undefined,
      error: e instanceof ToolError ? e.message : `The tool ${use.name} failed`,
    };
  }
}
