import { randomUUID } from 'node:crypto';
import { and, asc, eq, inArray } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { type Actor, auditedBy } from '../../lib/actor';
import { isUniqueViolation } from '../../lib/db-errors';
import { AppError } from '../../lib/errors';
import { recordAudit } from '../audit/audit.service';
import { renameAgentTools } from './agent-tools';
import type { DiscoveredTool, Discovery, McpEndpoint } from './client';
import { openHeaders, sealHeaders } from './crypto';
import { discoverOrThrow, discoveryError } from './discovery';
import { checkedHeaders } from './headers';
import { type McpServerInfo, toServerInfo } from './mcp.dto';
import { type McpServerRow, mcpServers, mcpTools } from './mcp.table';
import { serverNameProblem, toolNameProblem } from './names';
import type { McpRuntime } from './runtime';
import { urlProblem } from './ssrf';

const notFound = () => new AppError('mcp.not_found', 'Not found');
const nameTaken = () =>
  new AppError('mcp.name_taken', 'An MCP server with that name exists in this project');

function checkName(name: string) {
  const problem = serverNameProblem(name);
  if (problem) throw new AppError('mcp.invalid', `Invalid server name: ${problem}`);
}

function checkUrl(runtime: McpRuntime, url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new AppError('mcp.invalid', 'Invalid URL');
  }
  const problem = urlProblem(parsed, runtime.limits);
  if (problem) throw new AppError('mcp.url_refused', `The URL ${problem}`);
  return parsed.href;
}

function seal(runtime: McpRuntime, serverId: string, headers: Record<string, string>) {
  if (Object.keys(headers).length === 0) return null;
  if (!runtime.key) {
    throw new AppError(
      'mcp.secret_key_missing',
      'Header values cannot be stored: set MCP_SECRET_KEY on the server',
    );
  }
  return sealHeaders(runtime.key, serverId, headers);
}

/** The server's headers, opened (empty when it has none). */
export function serverHeaders(runtime: McpRuntime, row: McpServerRow): Record<string, string> {
  if (!row.headersSealed) return {};
  if (!runtime.key) {
    throw new AppError('mcp.secret_key_missing', 'MCP_SECRET_KEY is not set on the server');
  }
  return openHeaders(runtime.key, row.id, row.headersSealed);
}

/** Where the audit log says a server is: the origin only (a query may carry a secret). */
const origin = (url: string) => new URL(url).origin;

async function replaceTools(db: Db, serverId: string, tools: DiscoveredTool[]) {
  await db.delete(mcpTools).where(eq(mcpTools.serverId, serverId));
  if (tools.length > 0) {
    await db.insert(mcpTools).values(tools.map((t) => ({ serverId, ...t })));
  }
}

async function info(db: Db, row: McpServerRow): Promise<McpServerInfo> {
  const tools = await db
    .select()
    .from(mcpTools)
    .where(eq(mcpTools.serverId, row.id))
    .orderBy(asc(mcpTools.name));
  return toServerInfo(row, tools);
}

export type DiscoveredServer = McpServerInfo & { skippedTools: Discovery['skipped'] };

export async function listServers(db: Db, projectId: string): Promise<McpServerInfo[]> {
  const rows = await db
    .select()
    .from(mcpServers)
    .where(eq(mcpServers.projectId, projectId))
    .orderBy(asc(mcpServers.name));
  if (rows.length === 0) return [];
  const tools = await db
    .select()
    .from(mcpTools)
    .where(
      inArray(
        mcpTools.serverId,
        rows.map((r) => r.id),
      ),
    )
    .orderBy(asc(mcpTools.name));
  return rows.map((r) => toServerInfo(r, tools));
}

async function serverRow(db: Db, serverId: string): Promise<McpServerRow> {
  const [row] = await db.select().from(mcpServers).where(eq(mcpServers.id, serverId));
  if (!row) throw notFound();
  return row;
}

async function assertNameFree(db: Db, projectId: string, name: string) {
  const [taken] = await db
    .select({ id: mcpServers.id })
    .from(mcpServers)
    .where(and(eq(mcpServers.projectId, projectId), eq(mcpServers.name, name)));
  if (taken) throw nameTaken();
}

/** Adds a server once its tool list has been read (an unreachable server is not stored). */
export async function createServer(opts: {
  db: Db;
  runtime: McpRuntime;
  actor: Actor;
  projectId: string;
  name: string;
  url: string;
  headers?: Record<string, string> | undefined;
}): Promise<DiscoveredServer> {
  checkName(opts.name);
  const url = checkUrl(opts.runtime, opts.url);
  const headers = checkedHeaders(opts.headers ?? {});
  const id = randomUUID();
  const headersSealed = seal(opts.runtime, id, headers);
  await assertNameFree(opts.db, opts.projectId, opts.name);
  const found = await discoverOrThrow(opts.runtime, { name: opts.name, url, headers });
  try {
    const row = await opts.db.transaction(async (tx) => {
      const [inserted] = await tx
        .insert(mcpServers)
        .values({
          id,
          projectId: opts.projectId,
          name: opts.name,
          url,
          headerNames: Object.keys(headers),
          headersSealed,
          toolsRefreshedAt: new Date(),
          createdBy: opts.actor.userId,
        })
        .returning();
      if (!inserted) throw new Error('insert returned no row');
      await replaceTools(tx, id, found.tools);
      await recordAudit({
        db: tx,
        ...auditedBy(opts.actor),
        action: 'mcp.server_created',
        projectId: opts.projectId,
        target: id,
        metadata: { name: opts.name, origin: origin(url), headerNames: Object.keys(headers) },
      });
      return inserted;
    });
    return { ...(await info(opts.db, row)), skippedTools: found.skipped };
  } catch (e) {
    if (isUniqueViolation(e)) throw nameTaken();
    throw e;
  }
}

export async function updateServer(opts: {
  db: Db;
  runtime: McpRuntime;
  actor: Actor;
  serverId: string;
  name?: string | undefined;
  url?: string | undefined;
  /** Replaces all headers; `{}` or null removes them; unset keeps them. */
  headers?: Record<string, string> | null | undefined;
}): Promise<DiscoveredServer> {
  const row = await serverRow(opts.db, opts.serverId);
  const name = opts.name ?? row.name;
  if (opts.name !== undefined) checkName(opts.name);
  const url = opts.url !== undefined ? checkUrl(opts.runtime, opts.url) : row.url;
  const headers =
    opts.headers === undefined
      ? serverHeaders(opts.runtime, row)
      : checkedHeaders(opts.headers ?? {});
  const headersSealed =
    opts.headers === undefined ? row.headersSealed : seal(opts.runtime, row.id, headers);
  if (name !== row.name) await assertNameFree(opts.db, row.projectId, name);
  // Where or how the server is reached changed: its tool list is read again.
  const rediscover = url !== row.url || opts.headers !== undefined;
  const found = rediscover
    ? await discoverOrThrow(opts.runtime, { name, url, headers })
    : undefined;
  if (!found && name !== row.name) await assertToolNamesFit(opts.db, row.id, name);
  const changed = (['name', 'url', 'headers'] as const).filter((f) => opts[f] !== undefined);
  try {
    const updated = await opts.db.transaction(async (tx) => {
      const [saved] = await tx
        .update(mcpServers)
        .set({
          name,
          url,
          headerNames: Object.keys(headers),
          headersSealed,
          ...(found ? { lastError: null, toolsRefreshedAt: new Date() } : {}),
          updatedAt: new Date(),
        })
        .where(eq(mcpServers.id, row.id))
        .returning();
      if (!saved) throw notFound();
      if (found) await replaceTools(tx, row.id, found.tools);
      if (name !== row.name) await renameAgentTools(tx, row.projectId, row.name, name);
      await recordAudit({
        db: tx,
        ...auditedBy(opts.actor),
        action: 'mcp.server_updated',
        projectId: row.projectId,
        target: row.id,
        metadata: {
          fields: [...changed],
          name,
          origin: origin(url),
          headerNames: Object.keys(headers),
        },
      });
      return saved;
    });
    return { ...(await info(opts.db, updated)), skippedTools: found?.skipped ?? [] };
  } catch (e) {
    if (isUniqueViolation(e)) throw nameTaken();
    throw e;
  }
}

async function assertToolNamesFit(db: Db, serverId: string, name: string) {
  const tools = await db
    .select({ name: mcpTools.name })
    .from(mcpTools)
    .where(eq(mcpTools.serverId, serverId));
  for (const t of tools) {
    const problem = toolNameProblem(name, t.name);
    if (problem)
      throw new AppError('mcp.invalid', `With that name, the tool "${t.name}": ${problem}`);
  }
}

/** Deleting a server also drops its tools from the project's agents. */
export async function deleteServer(opts: { db: Db; actor: Actor; serverId: string }) {
  await opts.db.transaction(async (tx) => {
    const [deleted] = await tx
      .delete(mcpServers)
      .where(eq(mcpServers.id, opts.serverId))
      .returning();
    if (!deleted) throw notFound();
    await renameAgentTools(tx, deleted.projectId, deleted.name, null);
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'mcp.server_deleted',
      projectId: deleted.projectId,
      target: deleted.id,
      metadata: { name: deleted.name, origin: origin(deleted.url) },
    });
  });
}

/**
 * Reads the tool list again. On failure the cached tools stay and the server shows the
 * error (status 'error') until a refresh succeeds.
 */
export async function refreshServer(opts: {
  db: Db;
  runtime: McpRuntime;
  serverId: string;
}): Promise<DiscoveredServer> {
  const row = await serverRow(opts.db, opts.serverId);
  const headers = serverHeaders(opts.runtime, row);
  let found: Discovery;
  try {
    found = await discoverOrThrow(opts.runtime, { name: row.name, url: row.url, headers });
  } catch (e) {
    const message = e instanceof Error ? e.message : 'failed';
    await opts.db.update(mcpServers).set({ lastError: message }).where(eq(mcpServers.id, row.id));
    throw e;
  }
  const saved = await storeDiscovery(opts.db, row.id, found);
  return { ...(await info(opts.db, saved ?? row)), skippedTools: found.skipped };
}

/** A new tool list for a server (refresh, or list_changed during a call). */
export async function storeDiscovery(db: Db, serverId: string, found: Discovery) {
  return db.transaction(async (tx) => {
    const [saved] = await tx
      .update(mcpServers)
      .set({ lastError: null, toolsRefreshedAt: new Date() })
      .where(eq(mcpServers.id, serverId))
      .returning();
    // Deleted meanwhile: nothing to store.
    if (!saved) return undefined;
    await replaceTools(tx, serverId, found.tools);
    return saved;
  });
}

export function endpointOf(runtime: McpRuntime, row: McpServerRow): McpEndpoint {
  return { name: row.name, url: row.url, headers: serverHeaders(runtime, row) };
}

export { discoveryError };
