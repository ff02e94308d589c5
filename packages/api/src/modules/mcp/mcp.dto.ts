import type { McpServerRow, McpToolRow } from './mcp.table';
import { mcpToolName } from './names';

export interface McpToolInfo {
  /** The name agents list in their `tools`: mcp__<server>__<tool>. */
  qualifiedName: string;
  /** The name on the server. */
  name: string;
  description: string;
}

/** A server as members see it: header names only, never their values. */
export interface McpServerInfo {
  id: string;
  projectId: string;
  name: string;
  url: string;
  headerNames: string[];
  status: 'ok' | 'error';
  /** Why the last discovery failed (status 'error'); the cached tools are the earlier ones. */
  lastError: string | null;
  toolsRefreshedAt: string | null;
  tools: McpToolInfo[];
  createdAt: string;
  updatedAt: string;
}

export function toServerInfo(row: McpServerRow, tools: McpToolRow[]): McpServerInfo {
  return {
    id: row.id,
    projectId: row.projectId,
    name: row.name,
    url: row.url,
    headerNames: row.headerNames,
    status: row.lastError ? 'error' : 'ok',
    lastError: row.lastError,
    toolsRefreshedAt: row.toolsRefreshedAt?.toISOString() ?? null,
    tools: tools
      .filter((t) => t.serverId === row.id)
      .map((t) => ({
        qualifiedName: mcpToolName(row.name, t.name),
        name: t.name,
        description: t.description,
      })),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}
