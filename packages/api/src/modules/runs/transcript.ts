import type { ChatTurn } from '../../ai/provider';

/**
 * The Messages API refuses tool_use/tool_result blocks in a request that defines no tools
 * (an agent handed a task after tool calls may have none). Such an agent gets the same
 * history with the tool exchanges written out as text.
 */
export function flattenTools(turns: ChatTurn[]): ChatTurn[] {
  return turns.map((turn) => {
    if (typeof turn.content === 'string') return turn;
    const text = turn.content
      .map((b) => {
        if (b.type === 'text') return b.text;
        if (b.type === 'tool_use') return `[called tool ${b.name} with ${JSON.stringify(b.input)}]`;
        return `[tool result${b.isError ? ' (error)' : ''}: ${b.content}]`;
      })
      .join('\n');
    return { role: turn.role, content: text };
  });
}
