import type { ErrorTable } from '../../lib/error-table';

/** MCP tool servers. */
export const mcpErrors = {
  'mcp.not_found': { transport: 'NOT_FOUND' },
  'mcp.invalid': { transport: 'BAD_REQUEST' },
  'mcp.name_taken': { transport: 'CONFLICT' },
  /** The URL is not allowed: scheme, credentials, or an address that is not public. */
  'mcp.url_refused': { transport: 'BAD_REQUEST' },
  /** The server could not be reached, timed out, or did not speak MCP. */
  'mcp.unreachable': { transport: 'BAD_REQUEST' },
  /** Header values cannot be stored: no MCP_SECRET_KEY in production. */
  'mcp.secret_key_missing': { transport: 'PRECONDITION_FAILED' },
} as const satisfies ErrorTable<`mcp.${string}`>;
