import { z } from 'zod';
import { projectProcedure, resourceProcedure, router } from '../../trpc';
import { ownedBy } from '../auth/auth.service';
import * as mcp from './mcp.service';
import { mcpServers } from './mcp.table';
import { SERVER_NAME_MAX } from './names';
import { mcpRuntime } from './runtime';

const headers = z
  .record(z.string().min(1).max(100), z.string().max(4096))
  .describe('HTTP headers sent with every request (e.g. Authorization); values are write-only');

const fields = {
  name: z
    .string()
    .min(1)
    .max(SERVER_NAME_MAX)
    .describe('Lowercase letters, digits, "-" and single "_"; tools appear as mcp__<name>__<tool>'),
  url: z.string().min(1).max(2000).describe('The Streamable HTTP endpoint, https://'),
};

const inServer = (minRole: 'viewer' | 'admin') =>
  resourceProcedure(minRole, {
    input: z.object({ serverId: z.uuid() }),
    notFound: 'mcp.not_found',
    id: 'serverId',
    owner: ownedBy('mcp_server', mcpServers, mcpServers.id, mcpServers.projectId),
  });

export const mcpRouter = router({
  servers: router({
    list: projectProcedure('viewer')
      .meta({
        description:
          "The project's MCP tool servers with their cached tools. Header names only: values are never returned.",
      })
      .query(({ ctx }) => mcp.listServers(ctx.db, ctx.membership.projectId)),

    create: projectProcedure('admin')
      .meta({
        description:
          'Adds an MCP server (Streamable HTTP). Its tool list is read first (tools/list): a URL ' +
          'that is not https, resolves to a private, loopback or link-local address, redirects, ' +
          'or does not answer is refused. Header values are stored encrypted and never returned. ' +
          '`skippedTools` names listed tools agents cannot be offered, and why.',
      })
      .input(z.object({ ...fields, headers: headers.optional() }))
      .mutation(({ ctx, input }) =>
        mcp.createServer({
          db: ctx.db,
          runtime: mcpRuntime(ctx.config),
          actor: ctx.actor,
          projectId: ctx.membership.projectId,
          name: input.name,
          url: input.url,
          headers: input.headers,
        }),
      ),

    update: inServer('admin')
      .meta({
        description:
          "Renames a server (agents' tool names follow), moves it or replaces its headers " +
          '(`headers` replaces them all; null removes them; omitted keeps them). A new URL or ' +
          'new headers read the tool list again, with the same checks as create.',
      })
      .input(
        z.object({
          name: fields.name.optional(),
          url: fields.url.optional(),
          headers: headers.nullable().optional(),
        }),
      )
      .mutation(({ ctx, input }) =>
        mcp.updateServer({
          db: ctx.db,
          runtime: mcpRuntime(ctx.config),
          actor: ctx.actor,
          serverId: input.serverId,
          name: input.name,
          url: input.url,
          headers: input.headers,
        }),
      ),

    delete: inServer('admin')
      .meta({ description: "Removes a server; its tools are dropped from the project's agents." })
      .mutation(async ({ ctx, input }) => {
        await mcp.deleteServer({ db: ctx.db, actor: ctx.actor, serverId: input.serverId });
        return { ok: true as const };
      }),

    refresh: inServer('admin')
      .meta({
        description:
          "Reads the server's tool list again (tools/list). On failure the cached tools stay and " +
          'the server shows status `error` with the reason.',
      })
      .mutation(({ ctx, input }) =>
        mcp.refreshServer({
          db: ctx.db,
          runtime: mcpRuntime(ctx.config),
          serverId: input.serverId,
        }),
      ),
  }),
});
