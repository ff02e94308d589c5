import { z } from 'zod';
import { authedProcedure, projectProcedure, resourceProcedure, router } from '../../trpc';
import { ownedBy } from '../auth/auth.service';
import { projectMcpTools } from '../mcp/mcp.tools';
import { requireMembership } from '../projects/projects.service';
import * as agents from './agents.service';
import { agents as agentsTable } from './agents.table';
import { toolCatalogue } from './tools/registry';

/** An agent belongs to the project in its row. */
export const agentOwner = ownedBy('agent', agentsTable, agentsTable.id, agentsTable.projectId);

const fields = {
  name: z.string().trim().min(1).max(100),
  description: z.string().trim().max(2000).nullable().optional(),
  instructions: z.string().min(1).max(50_000),
  model: z.string().min(1).max(100),
  tools: z.array(z.string().min(1).max(64)).max(50).optional(),
  requiresApproval: z
    .array(z.string().min(1).max(64))
    .max(50)
    .optional()
    .describe("Tools (of the agent's tools) whose every call waits for a person's approval"),
  handoffs: z.array(z.uuid()).max(20).optional(),
  outputSchema: z.record(z.string(), z.unknown()).nullable().optional(),
  maxSteps: z.number().int().min(1).max(100).optional(),
  status: z.enum(['active', 'inactive']).optional(),
};

const inAgent = (minRole: 'viewer' | 'admin') =>
  resourceProcedure(minRole, {
    input: z.object({ agentId: z.uuid() }),
    notFound: 'agents.not_found',
    id: 'agentId',
    owner: agentOwner,
  });

export const agentsRouter = router({
  list: projectProcedure('viewer').query(({ ctx }) =>
    agents.listAgents(ctx.db, ctx.membership.projectId),
  ),

  create: projectProcedure('admin')
    .input(z.object(fields))
    .mutation(({ ctx, input }) => {
      const { projectId, ...f } = input;
      return agents.createAgent({ db: ctx.db, models: ctx.models, projectId, fields: f });
    }),

  get: inAgent('viewer').query(({ ctx, input }) => agents.getAgent(ctx.db, input.agentId)),

  update: inAgent('admin')
    .input(z.object(fields).partial())
    .mutation(({ ctx, input }) => {
      const { agentId, ...f } = input;
      return agents.updateAgent({
        db: ctx.db,
        models: ctx.models,
        agentId,
        projectId: ctx.membership.projectId,
        fields: f,
      });
    }),

  delete: inAgent('admin').mutation(async ({ ctx, input }) => {
    await agents.deleteAgent(ctx.db, { id: input.agentId, projectId: ctx.membership.projectId });
    return { ok: true as const };
  }),

  /** The built-in tool catalogue (handoff_to_<agent> tools come from each agent's handoffs). */
  tools: authedProcedure
    .meta({
      description:
        'The tools an agent may list in `tools`: the built-in ones and, with `projectId`, the ' +
        'MCP tools its servers offer (`mcp__<server>__<tool>`, each with its input schema). ' +
        "`handoff_to_<agent>` tools come from each agent's handoffs.",
    })
    .input(z.object({ projectId: z.uuid() }).optional())
    .query(async ({ ctx, input }) => {
      if (!input) return toolCatalogue();
      // A project the caller is not in reads as missing (projects.not_found).
      await requireMembership({ db: ctx.db, projectId: input.projectId, userId: ctx.user.id });
      return [...toolCatalogue(), ...(await projectMcpTools(ctx.db, input.projectId))];
    }),
});
