import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

/**
 * A real MCP server (the SDK's McpServer over its Streamable HTTP transport) on a loopback
 * port, for tests: echo, add, fail (isError), slow (sleeps), grow (adds a tool and announces
 * list_changed), big (a large answer). It records the headers of every request it gets.
 */
export interface TestMcpServer {
  url: string;
  /** Headers of every request received, in order. */
  received: http.IncomingHttpHeaders[];
  /** Answer every request with this redirect instead. */
  redirectTo: string | null;
  /** Open MCP sessions (ended by the client's DELETE). */
  readonly sessions: number;
  close(): Promise<void>;
}

const text = (t: string) => ({ content: [{ type: 'text' as const, text: t }] });

function build(state: { grown: boolean }): McpServer {
  const mcp = new McpServer({ name: 'test-tools', version: '1.0.0' });
  mcp.registerTool(
    'echo',
    { description: 'Echoes its text back.', inputSchema: { text: z.string().min(1) } },
    async ({ text: t }) => text(`echo: ${t}`),
  );
  mcp.registerTool(
    'add',
    { description: 'Adds two numbers.', inputSchema: { a: z.number(), b: z.number() } },
    async ({ a, b }) => text(String(a + b)),
  );
  mcp.registerTool('fail', { description: 'Always fails.' }, async () => ({
    content: [{ type: 'text' as const, text: 'the tool failed on purpose' }],
    isError: true,
  }));
  mcp.registerTool(
    'slow',
    { description: 'Answers after ms milliseconds.', inputSchema: { ms: z.number().int() } },
    async ({ ms }, extra) => {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        extra.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      return text(`slept ${ms} ms`);
    },
  );
  mcp.registerTool('big', { description: 'A large answer.' }, async () =>
    text('x'.repeat(64 * 1024)),
  );
  const grown = () =>
    mcp.registerTool('grown', { description: 'Added by grow.' }, async () => text('grown'));
  if (state.grown) grown();
  else {
    mcp.registerTool('grow', { description: 'Adds the tool "grown".' }, async (extra) => {
      state.grown = true;
      grown();
      // On this request's stream, so the client reads it before the call's result.
      await extra.sendNotification({ method: 'notifications/tools/list_changed' });
      return text('grew');
    });
  }
  return mcp;
}

export async function startTestMcpServer(): Promise<TestMcpServer> {
  const state = { grown: false };
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const received: http.IncomingHttpHeaders[] = [];
  const handle: Pick<TestMcpServer, 'redirectTo'> = { redirectTo: null };
  const server = http.createServer(async (req, res) => {
    received.push(req.headers);
    if (handle.redirectTo) {
      res.writeHead(307, { location: handle.redirectTo }).end();
      return;
    }
    const sid = req.headers['mcp-session-id'];
    let transport = typeof sid === 'string' ? transports.get(sid) : undefined;
    if (!transport) {
      if (req.method !== 'POST' || sid) {
        res.writeHead(404).end();
        return;
      }
      const created: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          transports.set(id, created);
        },
      });
      created.onclose = () => {
        if (created.sessionId) transports.delete(created.sessionId);
      };
      await build(state).connect(created);
      transport = created;
    }
    await transport.handleRequest(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    received,
    get redirectTo() {
      return handle.redirectTo;
    },
    set redirectTo(to) {
      handle.redirectTo = to;
    },
    get sessions() {
      return transports.size;
    },
    async close() {
      await Promise.all([...transports.values()].map((t) => t.close()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
