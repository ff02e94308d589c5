import { z } from 'zod';
import type { ToolSpec, Usage } from '../../ai/provider';
import { formatUsdc } from '../../lib/money';
import type { AgentRow } from '../agents/agents.service';
import { builtinTool, handoffToolName } from '../agents/tools/registry';
import { type GatewayCall, usageCost } from '../gateway/gateway';
import { mcpToolSpecs } from '../mcp/mcp.tools';
import type { RunContext } from './run-context';
import { flattenTools } from './transcript';

export interface ToolUse {
  id: string;
  name: string;
  input: unknown;
}

export interface ModelOutcome {
  text: string;
  toolUses: ToolUse[];
  usage: Usage;
  cost: bigint;
}

/**
 * The agent's built-in tools, its MCP tools its servers still list (read each step, so a
 * refresh or list_changed shows at the next step), and one handoff tool per target.
 */
async function toolSpecs(
  ctx: RunContext,
  agent: AgentRow,
  targets: AgentRow[],
): Promise<ToolSpec[]> {
  const mcp = await mcpToolSpecs(ctx.deps.db, ctx.run.projectId, agent.tools);
  return [
    ...agent.tools.flatMap((name) => {
      const spec = builtinSpec(name);
      return spec ? [spec] : [];
    }),
    ...mcp,
    ...targets.map((t) => ({
      name: handoffToolName(t),
      description: `Hand the task over to the agent "${t.name}"${t.description ? `: ${t.description}` : ''}. It continues with the whole conversation.`,
      inputSchema: { type: 'object', properties: { reason: { type: 'string' } } },
    })),
  ];
}

/** Built-in tools never change while the process runs: each JSON Schema is made once. */
const builtinSpecs = new Map<string, ToolSpec>();

function builtinSpec(name: string): ToolSpec | undefined {
  const known = builtinSpecs.get(name);
  if (known) return known;
  const t = builtinTool(name);
  if (!t) return undefined;
  const spec: ToolSpec = {
    name: t.name,
    description: t.description,
    inputSchema: z.toJSONSchema(t.input, { io: 'input' }) as Record<string, unknown>,
  };
  builtinSpecs.set(name, spec);
  return spec;
}

function systemPrompt(agent: AgentRow): string {
  return agent.outputSchema
    ? `${agent.instructions}\n\nWhen you give your final answer, reply with only a JSON document matching this JSON Schema:\n${JSON.stringify(agent.outputSchema)}`
    : agent.instructions;
}

/**
 * The gateway call of the agent's next model step: its prompt, the transcript and its tools.
 * Built once per step: the approval check (run-loop.ts) prices it, then it is made.
 */
export async function stepCall(
  ctx: RunContext,
  agent: AgentRow,
  targets: AgentRow[],
): Promise<GatewayCall> {
  const { deps, run } = ctx;
  const tools = await toolSpecs(ctx, agent, targets);
  const transcript = ctx.progress.transcript;
  return {
    projectId: run.projectId,
    userId: run.createdBy,
    keyId: run.createdByKey,
    agentId: agent.id,
    runId: run.id,
    source: 'run',
    model: agent.model,
    system: systemPrompt(agent),
    messages: tools.length > 0 ? transcript : flattenTools(transcript),
    maxOutputTokens: deps.maxOutputTokens,
    tools: tools.length > 0 ? tools : undefined,
  };
}

/** Streams one model turn through the gateway, forwarding text deltas as they come. */
async function streamTurn(ctx: RunContext, call: GatewayCall) {
  let text = '';
  const toolUses: ToolUse[] = [];
  let usage: Usage = { inputTokens: 0, outputTokens: 0 };
  // The previous call's worst case is held until its settlement lands.
  await ctx.settled();
  const settled = (settling: Promise<void>) => ctx.settling(settling);
  for await (const ev of ctx.deps.gateway.stream({ ...call, signal: ctx.signal, settled })) {
    if (ev.type === 'delta') {
      text += ev.text;
      // Published in the background, in order, deltas of a few ms batched together.
      ctx.events.push({ type: 'text.delta', text: ev.text }, 'soon');
    } else if (ev.type === 'tool_use') {
      toolUses.push({ id: ev.id, name: ev.name, input: ev.input });
    } else {
      usage = ev.usage;
    }
  }
  return { text, toolUses, usage };
}

/**
 * One model step: streamed and priced. Its usage event and its row are stored with its round
 * (run-loop.ts); step.started goes out while the model is called (or with the round, if that
 * is quicker). The gateway's settlement of the call is written alongside the round's commit
 * (RunContext.settling).
 */
export async function modelStep(
  ctx: RunContext,
  agent: AgentRow,
  call: GatewayCall,
): Promise<ModelOutcome> {
  const { deps } = ctx;
  ctx.events.push({ type: 'step.started', step: ctx.nextStep, agentId: agent.id }, 'soon');
  const startedAt = new Date();
  const { text, toolUses, usage } = await streamTurn(ctx, call);
  const info = deps.models.get(agent.model);
  // Priced as the gateway charged it (cache writes and reads at their own rates).
  const cost = info ? usageCost(info, usage) : 0n;
  ctx.events.push({ type: 'usage', ...usage, cost: formatUsdc(cost) }, 'deferred');
  ctx.recordStep({
    agentId: agent.id,
    kind: 'model',
    input: { model: agent.model, messages: ctx.progress.transcript.length },
    output: { text, toolCalls: toolUses },
    inputTokens: usage.inputTokens,
    outputTokens: usage.outputTokens,
    cost,
    startedAt,
    finishedAt: new Date(),
  });
  return { text, toolUses, usage, cost };
}
