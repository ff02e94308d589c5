import { and, asc, eq } from 'drizzle-orm';
import type { Db } from '../../db/client';
import type { Logger } from '../../lib/logger';
import { compileSchema, validationErrors } from '../agents/schema';
import { callTool } from './client';
import { SealBroken } from './crypto';
import { failureText } from './discovery';
import { endpointOf, storeDiscovery } from './mcp.service';
import { mcpServers, mcpTools } from './mcp.table';
import { isMcpToolName, mcpToolName, parseMcpToolName } from './names';
import type { McpRuntime } from './runtime';
import { UrlRefused } from './ssrf';

/** What agents and models see of MCP tools: mcp__<server>__<tool> with its input schema. */
export interface McpToolSpec {
  name: string;
  description: string;
  inputSchema: Record<string, unknown>;
}

/** Every cached tool of the project's servers, by qualified name. */
export async function projectMcpTools(db: Db, projectId: string): Promise<McpToolSpec[]> {
  const rows = await db
    .select({
      server: mcpServers.name,
      tool: mcpTools.name,
      description: mcpTools.description,
      inputSchema: mcpTools.inputSchema,
    })
    .from(mcpTools)
    .innerJoin(mcpServers, eq(mcpServers.id, mcpTools.serverId))
    .where(eq(mcpServers.projectId, projectId))
    .orderBy(asc(mcpServers.name), asc(mcpTools.name));
  return rows.map((r) => ({
    name: mcpToolName(r.server, r.tool),
    description: r.description,
    inputSchema: r.inputSchema,
  }));
}

/** The agent's MCP tools that exist now (a tool gone from its server is not offered). */
export async function mcpToolSpecs(
  db: Db,
  projectId: string,
  names: readonly string[],
): Promise<McpToolSpec[]> {
  const wanted = names.filter(isMcpToolName);
  if (wanted.length === 0) return [];
  const all = await projectMcpTools(db, projectId);
  return all.filter((t) => wanted.includes(t.name));
}

async function findTool(db: Db, projectId: string, name: string) {
  const parsed = parseMcpToolName(name);
  if (!parsed) return null;
  const [row] = await db
    .select({ server: mcpServers, inputSchema: mcpTools.inputSchema })
    .from(mcpTools)
    .innerJoin(mcpServers, eq(mcpServers.id, mcpTools.serverId))
    .where(
      and(
        eq(mcpServers.projectId, projectId),
        eq(mcpServers.name, parsed.server),
        eq(mcpTools.name, parsed.tool),
      ),
    );
  return row ? { ...row, tool: parsed.tool } : null;
}

export interface McpCallResult {
  /** Stored with the step and sent in tool.result. */
  output: unknown;
  /** What the model reads. */
  content: string;
  /** Set for a failure the model should see (bad arguments, isError, transport). */
  error: string | null;
}

const failed = (error: string): McpCallResult => ({ output: undefined, content: error, error });

/**
 * Calls an MCP tool for a run: arguments checked against the cached input schema first,
 * then tools/call through the guarded transport. Never throws for the server's failures.
 */
export async function runMcpTool(opts: {
  db: Db;
  runtime: McpRuntime | undefined;
  log: Logger;
  projectId: string;
  runId: string;
  name: string;
  input: unknown;
  signal: AbortSignal;
}): Promise<McpCallResult> {
  const found = await findTool(opts.db, opts.projectId, opts.name);
  if (!found) return failed(`The tool ${opts.name} is no longer offered by its MCP server`);
  if (!opts.runtime) return failed('MCP tools are not available on this server');
  let validate: ReturnType<typeof compileSchema>;
  try {
    validate = compileSchema(found.inputSchema);
  } catch {
    // Checked when the list was read; refused rather than called unchecked.
    return failed(`The input schema of ${opts.name} cannot be used; refresh its MCP server`);
  }
  const args = opts.input ?? {};
  if (!validate(args)) {
    return failed(`Invalid input for ${opts.name}: ${validationErrors(validate)}`);
  }
  let endpoint: ReturnType<typeof endpointOf>;
  try {
    endpoint = endpointOf(opts.runtime, found.server);
  } catch (e) {
    if (!(e instanceof SealBroken)) throw e;
    opts.log.error(
      { serverId: found.server.id, runId: opts.runId },
      'MCP headers cannot be opened',
    );
    return failed(`The MCP server ${found.server.name} is misconfigured`);
  }
  try {
    const outcome = await callTool(endpoint, opts.runtime.limits, {
      tool: found.tool,
      args: args as Record<string, unknown>,
      signal: opts.signal,
    });
    if (outcome.toolsChanged) {
      await storeDiscovery(opts.db, found.server.id, outcome.toolsChanged).catch((err: unknown) =>
        opts.log.warn(
          { err, serverId: found.server.id },
          'could not store a changed MCP tool list',
        ),
      );
    }
    const output = {
      content: outcome.text,
      ...(outcome.structuredContent !== undefined
        ? { structuredContent: outcome.structuredContent }
        : {}),
    };
    if (outcome.isError) return { output, content: outcome.text, error: outcome.text || 'failed' };
    return { output, content: outcome.text, error: null };
  } catch (e) {
    // A cancelled run stops here too; the run loop sees its signal and ends the run.
    const why = failureText(e, endpoint.headers);
    if (!(e instanceof UrlRefused)) {
      opts.log.warn(
        { serverId: found.server.id, runId: opts.runId, tool: opts.name, reason: why },
        'MCP tool call failed',
      );
    }
    return failed(`The MCP server ${found.server.name} failed: ${why}`);
  }
}
