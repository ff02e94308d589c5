import type { Config } from '../../config';
import { type HeaderKey, headerKey } from './crypto';
import type { FetchLimits } from './fetch';
import type { LookupAll } from './ssrf';

/** What talking to MCP servers needs: the sealing key and the limits of every exchange. */
export interface McpRuntime {
  /** Null in production without MCP_SECRET_KEY: servers with headers are refused. */
  key: HeaderKey | null;
  limits: FetchLimits;
}

const built = new WeakMap<Config, McpRuntime>();

/** One per config (the key file is read, or written, once). */
export function mcpRuntime(config: Config, lookup?: LookupAll): McpRuntime {
  const known = lookup ? undefined : built.get(config);
  if (known) return known;
  const runtime: McpRuntime = {
    key: headerKey({
      secret: config.mcp.secretKey,
      nodeEnv: config.nodeEnv,
      dataDir: config.dataDir,
    }),
    limits: {
      allowLoopback: config.mcp.allowHttpLoopback,
      connectTimeoutMs: config.mcp.connectTimeoutMs,
      responseTimeoutMs: config.mcp.timeoutMs,
      maxResponseBytes: config.mcp.maxResponseBytes,
      lookup,
    },
  };
  if (!lookup) built.set(config, runtime);
  return runtime;
}
