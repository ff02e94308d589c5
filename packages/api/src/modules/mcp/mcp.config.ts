import { z } from 'zod';
import { bool, int, setting } from '../../lib/settings';

export const MIN_MCP_SECRET_KEY_LENGTH = 32;

/** MCP tool servers: the key that seals their header values, and the limits of every call. */
export const mcpConfig = {
  mcp: {
    secretKey: setting({
      env: 'MCP_SECRET_KEY',
      schema: z
        .string()
        .min(MIN_MCP_SECRET_KEY_LENGTH, `must be at least ${MIN_MCP_SECRET_KEY_LENGTH} characters`)
        .optional(),
      doc: 'key sealing MCP servers’ header values (AES-256-GCM); unset: generated once into DATA_DIR/mcp-secret-key, except in production, where servers with headers are then refused',
    }),
    allowHttpLoopback: setting({
      env: 'MCP_ALLOW_HTTP_LOOPBACK',
      schema: bool,
      default: 'false',
      doc: 'allow MCP servers on loopback addresses, over plain http too (development and tests only)',
    }),
    connectTimeoutMs: setting({
      env: 'MCP_CONNECT_TIMEOUT_MS',
      schema: int(100, 60_000),
      default: '5000',
      doc: 'opening a connection to an MCP server',
    }),
    timeoutMs: setting({
      env: 'MCP_TIMEOUT_MS',
      schema: int(100, 600_000),
      default: '30000',
      doc: 'longest wait for an MCP server’s answer (a tool call, the tool list)',
    }),
    maxResponseBytes: setting({
      env: 'MCP_MAX_RESPONSE_BYTES',
      schema: int(1024, 100 * 1024 * 1024),
      default: '1048576',
      doc: 'largest HTTP response read from an MCP server; larger fails the call',
    }),
  },
};
