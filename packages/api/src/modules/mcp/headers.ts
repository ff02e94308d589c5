import { AppError } from '../../lib/errors';

/** Names the transport sets itself, or that would change how a request is framed. */
const RESERVED = new Set([
  'host',
  'content-length',
  'content-type',
  'accept',
  'connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'keep-alive',
  'proxy-connection',
  'mcp-session-id',
  'mcp-protocol-version',
  'last-event-id',
]);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$/;
// Visible ASCII and spaces, no line breaks: nothing that could split a header.
const VALUE = /^[\t\x20-\x7e]{0,4096}$/;
export const MAX_HEADERS = 20;

/** Headers as sent: names lowercased, checked; refused with mcp.invalid. */
export function checkedHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  const entries = Object.entries(headers);
  if (entries.length > MAX_HEADERS) {
    throw new AppError('mcp.invalid', `At most ${MAX_HEADERS} headers`);
  }
  for (const [name, value] of entries) {
    const lower = name.toLowerCase();
    if (!TOKEN.test(name)) throw new AppError('mcp.invalid', `Invalid header name "${name}"`);
    if (RESERVED.has(lower)) {
      throw new AppError('mcp.invalid', `The header "${name}" is set by the transport`);
    }
    // The value stays out of the message: it is usually a token.
    if (!VALUE.test(value)) throw new AppError('mcp.invalid', `Invalid value for header "${name}"`);
    if (lower in out) throw new AppError('mcp.invalid', `The header "${name}" is given twice`);
    out[lower] = value;
  }
  return out;
}

/** The text with every header value replaced: what a server echoes back is not shown. */
export function redact(text: string, headers: Record<string, string>): string {
  let out = text;
  for (const value of Object.values(headers)) {
    if (value.length >= 4) out = out.split(value).join('[redacted]');
  }
  return out;
}
