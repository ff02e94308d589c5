/** What the output-schema box holds: no schema, a JSON object to send, or why it is neither. */
export type SchemaText =
  | { ok: true; schema: Record<string, unknown> | null }
  | { ok: false; error: string };

/**
 * Checks the schema box before saving: blank is "no schema"; otherwise it must be a JSON
 * object. Whether it is a valid JSON Schema the server decides (agents.invalid), with the
 * same compiler the runs use.
 */
export function parseSchemaText(text: string): SchemaText {
  if (text.trim() === '') return { ok: true, schema: null };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `Not valid JSON: ${jsonErrorWhere(text, e)}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, error: 'The schema must be a JSON object, e.g. {"type": "object"}' };
  }
  return { ok: true, schema: value as Record<string, unknown> };
}

/** The parser's message with a line and column, when it names a position. */
function jsonErrorWhere(text: string, e: unknown): string {
  const message = e instanceof Error ? e.message : 'cannot parse';
  const at = /position (\d+)/.exec(message);
  if (!at || /line \d+/.test(message)) return message;
  const before = text.slice(0, Number(at[1]));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return `${message} (line ${line}, column ${column})`;
}

export function schemaToText(schema: Record<string, unknown> | null): string {
  return schema ? JSON.stringify(schema, null, 2) : '';
}
