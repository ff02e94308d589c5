import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { compileSchema } from '../agents/schema';
import { type FetchLimits, guardedFetch } from './fetch';
import { toolNameProblem } from './names';

/**
 * One short MCP session per operation (discovery, a tool call): connect through the guarded
 * fetch, do it, end the session. Nothing is pooled, so no connection outlives the checks.
 */

export interface McpEndpoint {
  /** The server's name (for tool names) and where it is. */
  name: string;
  url: string;
  /** Opened header values; never logged. */
  headers: Record<string, string>;
}

export interface DiscoveredTool {
  name: string;
  description: string;
  inputSchema: Record<string, unknown>;
}

export interface Discovery {
  tools: DiscoveredTool[];
  /** Tools the server lists that agents cannot be offered, and why. */
  skipped: { name: string; reason: string }[];
}

const MAX_PAGES = 20;
const MAX_TOOLS = 500;
const CLIENT_INFO = { name: 'smartspace', version: '1.0.0' };

async function open(endpoint: McpEndpoint, limits: FetchLimits, outer?: AbortSignal) {
  // Aborted by a response cut at the size cap, or by the caller (a cancelled run).
  const failed = new AbortController();
  const signal = outer ? AbortSignal.any([outer, failed.signal]) : failed.signal;
  const transport = new StreamableHTTPClientTransport(new URL(endpoint.url), {
    fetch: guardedFetch(limits, (err) => failed.abort(err)),
    requestInit: { headers: endpoint.headers },
    // Redirects never reach the SDK (the fetch refuses them); this keeps it from trying.
    redirectPolicy: 'same-origin',
    reconnectionOptions: {
      maxRetries: 0,
      initialReconnectionDelay: 1000,
      maxReconnectionDelay: 1000,
      reconnectionDelayGrowFactor: 1,
    },
  });
  const client = new Client(CLIENT_INFO, { capabilities: {} });
  try {
    await client.connect(transport, { timeout: limits.responseTimeoutMs, signal });
  } catch (e) {
    await client.close().catch(() => {});
    throw e;
  }
  return { client, transport, signal };
}

async function close(session: { client: Client; transport: StreamableHTTPClientTransport }) {
  // Ends the server's session (DELETE); a server that does not keep sessions may refuse it.
  await session.transport.terminateSession().catch(() => {});
  await session.client.close().catch(() => {});
}

/** Whether the schema can validate arguments here (agents/schema.ts: draft-07 via Ajv). */
function usableSchema(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema, ...rest } = schema;
  // Later drafts' tool schemas are plain objects in practice; Ajv's draft-07 reads them.
  const portable = typeof $schema === 'string' && !$schema.includes('draft-07') ? rest : schema;
  compileSchema(portable);
  return portable;
}

async function listAll(
  client: Client,
  endpoint: McpEndpoint,
  limits: FetchLimits,
  signal: AbortSignal,
) {
  const found: Discovery = { tools: [], skipped: [] };
  let cursor: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const res = await client.listTools(cursor ? { cursor } : {}, {
      timeout: limits.responseTimeoutMs,
      signal,
    });
    for (const tool of res.tools) {
      if (found.tools.length >= MAX_TOOLS) {
        found.skipped.push({ name: tool.name, reason: `more than ${MAX_TOOLS} tools` });
        continue;
      }
      const nameProblem = toolNameProblem(endpoint.name, tool.name);
      if (nameProblem) {
        found.skipped.push({ name: tool.name, reason: nameProblem });
        continue;
      }
      try {
        found.tools.push({
          name: tool.name,
          description: (tool.description ?? tool.title ?? '').slice(0, 4000),
          inputSchema: usableSchema(tool.inputSchema as Record<string, unknown>),
        });
      } catch (e) {
        const why = e instanceof Error ? e.message : 'invalid';
        found.skipped.push({ name: tool.name, reason: `its input schema is unusable: ${why}` });
      }
    }
    cursor = res.nextCursor;
    if (!cursor) break;
  }
  return found;
}

/** tools/list, all pages. */
export async function discoverTools(
  endpoint: McpEndpoint,
  limits: FetchLimits,
): Promise<Discovery> {
  const session = await open(endpoint, limits);
  try {
    return await listAll(session.client, endpoint, limits, session.signal);
  } finally {
    await close(session);
  }
}

export interface CallOutcome {
  /** What the model reads: the result's text (other content summarised). */
  text: string;
  isError: boolean;
  structuredContent?: unknown;
  /** Set when the server announced a changed tool list during the call: the new list. */
  toolsChanged?: Discovery | undefined;
}

type ContentItem = {
  type: string;
  text?: string;
  mimeType?: string;
  resource?: { uri?: string; text?: string };
};

function contentText(content: ContentItem[], structured: unknown): string {
  const parts = content.map((c) => {
    if (c.type === 'text') return c.text ?? '';
    if (c.type === 'resource' && typeof c.resource?.text === 'string') return c.resource.text;
    if (c.type === 'resource_link' || c.type === 'resource')
      return `[resource ${c.resource?.uri ?? ''}]`;
    return `[${c.type}${c.mimeType ? ` ${c.mimeType}` : ''}]`;
  });
  if (parts.length === 0 && structured !== undefined) return JSON.stringify(structured);
  return parts.join('\n');
}

/** tools/call; an MCP error result comes back with isError, a transport failure throws. */
export async function callTool(
  endpoint: McpEndpoint,
  limits: FetchLimits,
  call: { tool: string; args: Record<string, unknown>; signal?: AbortSignal | undefined },
): Promise<CallOutcome> {
  const session = await open(endpoint, limits, call.signal);
  let changed = false;
  session.client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
    changed = true;
  });
  try {
    const result = await session.client.callTool(
      { name: call.tool, arguments: call.args },
      undefined,
      {
        timeout: limits.responseTimeoutMs,
        maxTotalTimeout: limits.responseTimeoutMs,
        signal: session.signal,
      },
    );
    const content = (Array.isArray(result.content) ? result.content : []) as ContentItem[];
    const outcome: CallOutcome = {
      text: contentText(content, result.structuredContent),
      isError: result.isError === true,
      ...(result.structuredContent !== undefined
        ? { structuredContent: result.structuredContent }
        : {}),
    };
    if (changed) {
      // Best effort: the call's result stands even if the new list cannot be read.
      outcome.toolsChanged = await listAll(session.client, endpoint, limits, session.signal).catch(
        () => undefined,
      );
    }
    return outcome;
  } finally {
    await close(session);
  }
}
