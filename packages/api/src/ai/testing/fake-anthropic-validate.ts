/**
 * The request checks of the fake Anthropic server: the ones the real API makes that a
 * client of ours could plausibly trip over, with the real API's status and wording, so a
 * wire-format mistake fails a test instead of passing against a lenient fake.
 */

export interface Rejection {
  status: number;
  message: string;
}

export interface RequestToCheck {
  method: string;
  path: string;
  apiKey: string | undefined;
  anthropicVersion: string | undefined;
  model: string | undefined;
  max_tokens: number | undefined;
  messages: unknown;
  tools: unknown;
}

/** Token counting: the same request checks, without max_tokens. */
export const COUNT_TOKENS_PATH = '/v1/messages/count_tokens';

export function validate(r: RequestToCheck, apiKey: string): Rejection | null {
  const path = r.path.split('?')[0];
  const counting = path === COUNT_TOKENS_PATH;
  if (r.method !== 'POST' || !(path === '/v1/messages' || counting)) {
    return { status: 404, message: `Not found: ${r.method} ${r.path}` };
  }
  if (r.apiKey !== apiKey) return { status: 401, message: 'invalid x-api-key' };
  if (!r.anthropicVersion || !/^\d{4}-\d{2}-\d{2}$/.test(r.anthropicVersion)) {
    return { status: 400, message: 'anthropic-version: header is required' };
  }
  if (!r.model) return { status: 400, message: 'model: Field required' };
  if (!counting && !(Number.isInteger(r.max_tokens) && (r.max_tokens ?? 0) >= 1)) {
    return { status: 400, message: 'max_tokens: must be a positive integer' };
  }
  if (!Array.isArray(r.messages) || r.messages.length === 0) {
    return { status: 400, message: 'messages: at least one message is required' };
  }
  const message = checkTools(r.tools) ?? checkToolBlocks(r.messages, r.tools !== undefined);
  return message ? { status: 400, message } : null;
}

const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

function checkTools(tools: unknown): string | null {
  if (tools === undefined) return null;
  if (!Array.isArray(tools)) return 'tools: Input should be a valid list';
  const names = new Set<string>();
  for (const [i, tool] of tools.entries()) {
    if (!isRecord(tool)) return `tools.${i}: Input should be a valid dictionary`;
    if (typeof tool.name !== 'string' || !TOOL_NAME.test(tool.name)) {
      return `tools.${i}.custom.name: String should match pattern '${TOOL_NAME.source}'`;
    }
    if (!isRecord(tool.input_schema)) return `tools.${i}.custom.input_schema: Field required`;
    if (tool.input_schema.type !== 'object') {
      return `tools.${i}.custom.input_schema.type: Input should be 'object'`;
    }
    if (tool.description !== undefined && typeof tool.description !== 'string') {
      return `tools.${i}.custom.description: Input should be a valid string`;
    }
    if (names.has(tool.name)) return 'tools: Tool names must be unique.';
    names.add(tool.name);
  }
  return null;
}

function checkToolBlocks(messages: unknown[], toolsDefined: boolean): string | null {
  for (const [i, m] of messages.entries()) {
    const blocks = blocksOf(m);
    for (const [j, b] of blocks.entries()) {
      const at = `messages.${i}.content.${j}`;
      if (b.type === 'tool_use') {
        if (typeof b.id !== 'string' || typeof b.name !== 'string' || !isRecord(b.input)) {
          return `${at}.tool_use: id, name and an object input are required`;
        }
      } else if (b.type === 'tool_result') {
        if (typeof b.tool_use_id !== 'string')
          return `${at}.tool_result.tool_use_id: Field required`;
        if (b.is_error !== undefined && typeof b.is_error !== 'boolean') {
          return `${at}.tool_result.is_error: Input should be a valid boolean`;
        }
      } else if (b.type === 'text') {
        if (typeof b.text !== 'string' || b.text === '') {
          return `${at}: text content blocks must be non-empty`;
        }
      }
    }
    const usesTools = blocks.some((b) => b.type === 'tool_use' || b.type === 'tool_result');
    if (usesTools && !toolsDefined) {
      return 'Requests which include `tool_use` or `tool_result` blocks must define tools.';
    }
    const pairing = checkPairing(messages, i);
    if (pairing) return pairing;
  }
  return null;
}

/** Every tool_use is answered by a tool_result in the very next message, and vice versa. */
function checkPairing(messages: unknown[], i: number): string | null {
  const ids = (m: unknown, type: string, key: string) =>
    blocksOf(m)
      .filter((b) => b.type === type)
      .map((b) => String(b[key]));
  const m = messages[i];
  const results = ids(m, 'tool_result', 'tool_use_id');
  if (results.length > 0) {
    const asked = new Set(
      isRole(messages[i - 1], 'assistant') ? ids(messages[i - 1], 'tool_use', 'id') : [],
    );
    const stray = results.filter((id) => !asked.has(id));
    if (!isRole(m, 'user') || stray.length > 0) {
      return (
        `messages.${i}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ` +
        `${stray.join(', ') || results.join(', ')}. Each \`tool_result\` block must have a ` +
        'corresponding `tool_use` block in the previous message.'
      );
    }
  }
  const uses = ids(m, 'tool_use', 'id');
  if (uses.length > 0 && i + 1 < messages.length) {
    const answered = new Set(ids(messages[i + 1], 'tool_result', 'tool_use_id'));
    const missing = uses.filter((id) => !answered.has(id));
    if (missing.length > 0) {
      return (
        `messages.${i}: \`tool_use\` ids were found without \`tool_result\` blocks immediately ` +
        `after: ${missing.join(', ')}. Each \`tool_use\` block must have a corresponding ` +
        '`tool_result` block in the next message.'
      );
    }
  }
  return null;
}

function blocksOf(m: unknown): Array<Record<string, unknown>> {
  if (!isRecord(m) || !Array.isArray(m.content)) return [];
  return m.content.filter(isRecord);
}

function isRole(m: unknown, role: string): boolean {
  return isRecord(m) && m.role === role;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
