/**
 * How MCP tools are named to agents and models: `mcp__<server>__<tool>`. Providers accept
 * tool names of [a-zA-Z0-9_-]{1,64}, so a tool whose full name falls outside that is not
 * offered. A server name never contains `__` nor ends with `_`, so the first `__` after the
 * prefix always ends it.
 */
export const MCP_PREFIX = 'mcp__';

export const SERVER_NAME_MAX = 32;
export const SERVER_NAME = /^[a-z0-9](?:[a-z0-9-]|_(?!_))*$/;
const SERVER_NAME_HINT =
  'lowercase letters, digits, "-" and single "_" (not last), starting with a letter or digit';

const MODEL_TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

export function serverNameProblem(name: string): string | null {
  if (name.length > SERVER_NAME_MAX) return `at most ${SERVER_NAME_MAX} characters`;
  if (!SERVER_NAME.test(name) || name.endsWith('_')) return SERVER_NAME_HINT;
  return null;
}

export function mcpToolName(server: string, tool: string): string {
  return `${MCP_PREFIX}${server}__${tool}`;
}

/** Null when the tool can be offered under its full name, else why not. */
export function toolNameProblem(server: string, tool: string): string | null {
  const full = mcpToolName(server, tool);
  return MODEL_TOOL_NAME.test(full)
    ? null
    : `its full name ${JSON.stringify(full)} is not 1-64 characters of [a-zA-Z0-9_-]`;
}

export function isMcpToolName(name: string): boolean {
  return name.startsWith(MCP_PREFIX);
}

export function parseMcpToolName(name: string): { server: string; tool: string } | null {
  if (!isMcpToolName(name)) return null;
  const rest = name.slice(MCP_PREFIX.length);
  const cut = rest.indexOf('__');
  if (cut <= 0 || cut + 2 >= rest.length) return null;
  return { server: rest.slice(0, cut), tool: rest.slice(cut + 2) };
}
