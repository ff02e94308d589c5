import type { ChatTurn, ContentBlock } from './provider';

/**
 * The mock model's tool use, scripted from the prompt so offline demos and benchmarks of
 * agent runs are deterministic:
 *
 * - `[[tool:<name> <json object>]]` in the last user turn's text, with tools offered, makes
 *   the mock call `<name>` with that input (`[[tool:<name>]]` calls it with `{}`). Several
 *   directives make several calls, in order. The name is not checked against the offered
 *   tools, so a runner can rehearse a model calling a tool it does not have. A directive
 *   whose JSON is not an object is not a directive (the turn is echoed).
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
  for (const match of text.matchAll(DIRECTIVE)) {
    const name = match[1] ?? '';
    const input = directiveInput(text.slice(match.index + match[0].length));
    if (input === undefined) continue;
    calls.push({ id: `toolu_mock_${turnNumber}_${calls.length + 1}`, name, input });
  }
  return calls;
}

/**
 * The input after a directive's name, up to its closing `]]`. JSON may itself contain
 * `]]`, so each closing bracket pair is tried in turn until the text before it parses.
 */
function directiveInput(rest: string): Record<string, unknown> | undefined {
  for (let end = rest.indexOf(']]'); end !== -1; end = rest.indexOf(']]', end + 1)) {
    const json = rest.slice(0, end).trim();
    if (json === '') return {};
    try {
      const value: unknown = JSON.parse(json);
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
        return value as Record<string, unknown>;
      }
      return undefined;
    } catch {
      // Not this `]]`; perhaps a later one.
    }
  }
  return undefined;
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
