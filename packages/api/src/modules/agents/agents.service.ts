import { and, eq, inArray } from 'drizzle-orm';
import type { ModelRegistry } from '../../ai/registry';
import type { Db } from '../../db/client';
import { isUniqueViolation } from '../../lib/db-errors';
import { AppError } from '../../lib/errors';
import { projectMcpTools } from '../mcp/mcp.tools';
import { isMcpToolName } from '../mcp/names';
import { type Agent, type AgentFields, toAgent } from './agents.dto';
import { type AgentRow, agents } from './agents.table';
import { schemaProblem } from './schema';
import { builtinTool } from './tools/registry';

/** Unknown tools or models, foreign or inactive handoff targets, bad schemas: BAD_REQUEST. */
async function validate(opts: {
  db: Db;
  models: ModelRegistry;
  projectId: string;
  selfId: string | null;
  fields: Partial<AgentFields>;
}) {
  const { fields } = opts;
  if (fields.model !== undefined && !opts.models.get(fields.model)) {
    throw new AppError('agents.invalid', `Unknown model "${fields.model}"; see models.list`);
  }
  const mcpNames = (fields.tools ?? []).some(isMcpToolName)
    ? new Set((await projectMcpTools(opts.db, opts.projectId)).map((t) => t.name))
    : new Set<string>();
  for (const name of fields.tools ?? []) {
    // An MCP tool must be one the project's servers list now (see mcp.servers.refresh).
    if (isMcpToolName(name) ? !mcpNames.has(name) : !builtinTool(name))
      throw new AppError('agents.invalid', `Unknown tool "${name}"; see agents.tools`);
  }
  if (fields.requiresApproval !== undefined || fields.tools !== undefined) {
    // What the agent will have after this change: a field left out keeps its stored value.
    const stored = opts.selfId
      ? (
          await opts.db
            .select({ tools: agents.tools, requiresApproval: agents.requiresApproval })
            .from(agents)
            .where(eq(agents.id, opts.selfId))
        )[0]
      : undefined;
    const tools = fields.tools ?? stored?.tools ?? [];
    for (const name of fields.requiresApproval ?? stored?.requiresApproval ?? []) {
      if (!tools.includes(name))
        throw new AppError(
          'agents.invalid',
          `requiresApproval names "${name}", which is not one of the agent's tools`,
        );
    }
  }
  if (fields.outputSchema) {
    const problem = schemaProblem(fields.outputSchema);
    if (problem) throw new AppError('agents.invalid', `Invalid outputSchema: ${problem}`);
  }
  const handoffs = [...new Set(fields.handoffs ?? [])];
  if (opts.selfId && handoffs.includes(opts.selfId)) {
    throw new AppError('agents.invalid', 'An agent cannot hand off to itself');
  }
  if (handoffs.length > 0) {
    const targets = await opts.db
      .select({ id: agents.id, status: agents.status })
      .from(agents)
      .where(and(eq(agents.projectId, opts.projectId), inArray(agents.id, handoffs)));
    for (const id of handoffs) {
      const target = targets.find((t) => t.id === id);
      // Another project's agent reads as missing, like everywhere else.
      if (!target)
        throw new AppError(
          'agents.invalid',
          `Handoff target ${id} is not an agent of this project`,
        );
      if (target.status !== 'active')
        throw new AppError('agents.invalid', `Handoff target ${id} is inactive`);
    }
  }
}

const nameTaken = () =>
  new AppError('agents.name_taken', 'An agent with that name exists in this project');

export async function createAgent(opts: {
  db: Db;
  models: ModelRegistry;
  projectId: string;
  fields: AgentFields;
}) {
  await validate({ ...opts, selfId: null });
  const f = opts.fields;
  try {
    const [row] = await opts.db
      .insert(agents)
      .values({
        projectId: opts.projectId,
        name: f.name,
        description: f.description ?? null,
        instructions: f.instructions,
        model: f.model,
        tools: [...new Set(f.tools ?? [])],
        requiresApproval: [...new Set(f.requiresApproval ?? [])],
        handoffs: [...new Set(f.handoffs ?? [])],
        outputSchema: f.outputSchema ?? null,
        maxSteps: f.maxSteps ?? 10,
        status: f.status ?? 'active',
      })
      .returning();
    if (!row) throw new Error('insert returned no row');
    return toAgent(row);
  } catch (e) {
    if (isUniqueViolation(e)) throw nameTaken();
    throw e;
  }
}

export async function updateAgent(opts: {
  db: Db;
  models: ModelRegistry;
  agentId: string;
  projectId: string;
  fields: Partial<AgentFields>;
}) {
  await validate({ ...opts, selfId: opts.agentId });
  const patch = Object.fromEntries(Object.entries(opts.fields).filter(([, v]) => v !== undefined));
  if (patch.tools) patch.tools = [...new Set(patch.tools as string[])];
  if (patch.requiresApproval) {
    patch.requiresApproval = [...new Set(patch.requiresApproval as string[])];
  }
  if (patch.handoffs) patch.handoffs = [...new Set(patch.handoffs as string[])];
  try {
    const [row] = await opts.db
      .update(agents)
      .set({ ...patch, updatedAt: new Date() })
      .where(eq(agents.id, opts.agentId))
      .returning();
    if (!row) throw new AppError('agents.not_found', 'Not found');
    return toAgent(row);
  } catch (e) {
    if (isUniqueViolation(e)) throw nameTaken();
    throw e;
  }
}

export async function getAgent(db: Db, agentId: string): Promise<Agent> {
  const [row] = await db.select().from(agents).where(eq(agents.id, agentId));
  if (!row) throw new AppError('agents.not_found', 'Not found');
  return toAgent(row);
}

export type { AgentRow };

/** An agent's stored row, or null once it was deleted: what a run works from. */
export async function findAgentRow(db: Db, agentId: string): Promise<AgentRow | null> {
  const [row] = await db.select().from(agents).where(eq(agents.id, agentId));
  return row ?? null;
}

/** The project's active agents among `ids`: the handoff targets a run may offer. */
export async function activeAgentsAmong(
  db: Db,
  projectId: string,
  ids: string[],
): Promise<AgentRow[]> {
  if (ids.length === 0) return [];
  return db
    .select()
    .from(agents)
    .where(
      and(eq(agents.projectId, projectId), inArray(agents.id, ids), eq(agents.status, 'active')),
    );
}

export async function listAgents(db: Db, projectId: string): Promise<Agent[]> {
  const rows = await db
    .select()
    .from(agents)
    .where(eq(agents.projectId, projectId))
    .orderBy(agents.createdAt, agents.id);
  return rows.map(toAgent);
}

/** Deleting an agent also drops it from other agents' handoffs. */
export async function deleteAgent(db: Db, agent: { id: string; projectId: string }) {
  await db.transaction(async (tx) => {
    const referencing = await tx.select().from(agents).where(eq(agents.projectId, agent.projectId));
    for (const other of referencing) {
      if (other.handoffs.includes(agent.id)) {
        await tx
          .update(agents)
          .set({ handoffs: other.handoffs.filter((h) => h !== agent.id), updatedAt: new Date() })
          .where(eq(agents.id, other.id));
      }
    }
    await tx.delete(agents).where(eq(agents.id, agent.id));
  });
}
