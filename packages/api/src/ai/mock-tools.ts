import type { ChatTurn, ContentBlock } from './provider';

/**
 * The mock model's tool use, scripted from the prompt so offline demos and benchmarks of
 * agent runs are deterministic:
 *
 * - `[[tool:<name> <json object>]]` in the last user turn's text, with tools offered, makes
 *   the mock call `<name>` with that input (`[[tool:<name>]]` calls it with `{}`). Several
 *   directives make several calls, in order. The name is not checked against the offered
 *   tools, so a runner can rehearse a model calling a tool it does not have. A directive
 *   whose JSON is not an object is not a directive (the turn is echoed), nor is one whose
 *   JSON holds another directive's opening (`[[tool:<name>` then a space or `]`).
 * - A last user turn carrying tool_result blocks is answered in text:
 *   `Result: <content>`, one line per result, `Result (error): <content>` for errors.
 */

export interface MockToolCall {
  id: string;
  name: string;
  input: Record<string, unknown>;
}

const DIRECTIVE = /\[\[tool:([A-Za-z0-9_-]{1,128})(?=[\s\]])/g;

/**
 * The calls the directives in `text` ask for. Ids are unique within a conversation and
 * the same on every run: `toolu_mock_<turn number>_<call number>`.
 */
export function toolDirectives(text: string, turnNumber: number): MockToolCall[] {
  const calls: MockToolCall[] = [];
  const starts = [...text.matchAll(DIRECTIVE)];
  for (const [i, match] of starts.entries()) {
    const name = match[1] ?? '';
    // A directive's input ends where the next directive begins: each character is read
    // for one directive at most, so parsing stays linear in the prompt's length.
    const end = starts[i + 1]?.index ?? text.length;
    const input = directiveInput(text, match.index + match[0].length, end);
    if (input === undefined) continue;
    calls.push({ id: `toolu_mock_${turnNumber}_${calls.length + 1}`, name, input });
  }
  return calls;
}

/**
 * The input in text[from, to) after a directive's name: nothing before its closing `]]`, or
 * one JSON object then `]]`. JSON may itself contain `]]`, so the object's end is found by
 * its brackets (strings skipped), not by the first `]]`. (`to` is the next directive's
 * `[[` or the end of the text, so a `]]` found before it lies wholly before it.)
 */
function directiveInput(
  text: string,
  from: number,
  to: number,
): Record<string, unknown> | undefined {
  const start = skipSpace(text, from, to);
  if (text.startsWith(']]', start)) return {};
  if (text.charAt(start) !== '{') return undefined;
  const end = objectEnd(text, start, to);
  if (end === -1) return undefined;
  const close = skipSpace(text, end, to);
  if (!text.startsWith(']]', close)) return undefined;
  try {
    return JSON.parse(text.slice(start, end)) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

// Exactly what String.prototype.trim removes: the spacing allowed around a directive's JSON.
const SPACE = /\s/;

function skipSpace(text: string, from: number, to: number): number {
  let i = from;
  while (i < to && SPACE.test(text.charAt(i))) i++;
  return i;
}

/** The index after the bracket that closes the one at `start`, or -1 before `to`. */
function objectEnd(text: string, start: number, to: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < to; i++) {
    const c = text.charAt(i);
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if (c === '{' || c === '[') {
      depth++;
    } else if ((c === '}' || c === ']') && --depth === 0) {
      return i + 1;
    }
  }
  return -1;
}

/** The reply to a turn of tool results, or undefined when the turn carries none. */
export function toolResultReply(turn: ChatTurn | undefined): string | undefined {
  if (!turn || typeof turn.content === 'string') return undefined;
  const results = turn.content.filter(
    (b): b is Extract<ContentBlock, { type: 'tool_result' }> => b.type === 'tool_result',
  );
  if (results.length === 0) return undefined;
  return results.map((r) => `${r.isError ? 'Result (error)' : 'Result'}: ${r.content}`).join('\n');
}
