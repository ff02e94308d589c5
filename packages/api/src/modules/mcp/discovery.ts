import { AppError } from '../../lib/errors';
import { type Discovery, discoverTools, type McpEndpoint } from './client';
import { redact } from './headers';
import type { McpRuntime } from './runtime';
import { UrlRefused } from './ssrf';

/** Why an exchange with a server failed, short and without header values. */
export function failureText(e: unknown, headers: Record<string, string>): string {
  const raw = e instanceof Error ? e.message : String(e);
  return redact(raw, headers).replace(/\s+/g, ' ').slice(0, 500);
}

/** tools/list as an admin action: refusals and failures as app errors. */
export async function discoverOrThrow(
  runtime: McpRuntime,
  endpoint: McpEndpoint,
): Promise<Discovery> {
  try {
    return await discoverTools(endpoint, runtime.limits);
  } catch (e) {
    throw discoveryError(e, endpoint.headers);
  }
}

export function discoveryError(e: unknown, headers: Record<string, string>): AppError {
  if (e instanceof UrlRefused) return new AppError('mcp.url_refused', e.message);
  return new AppError(
    'mcp.unreachable',
    `Could not read the server's tool list: ${failureText(e, headers)}`,
  );
}
