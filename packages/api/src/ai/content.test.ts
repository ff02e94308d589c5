import { describe, expect, it } from 'vitest';
import { fitHistory } from '../modules/chat/context-window';
import { estimateInputTokens } from '../modules/gateway/estimate';
import { contentForCounting, contentText, toolsForCounting } from './content';
import type { ChatTurn, ContentBlock, ToolSpec } from './provider';

// Size estimates must see tool calls and results: counting only `.length` of a block
// array would price a 50 KB tool result as two "characters".

const bigResult = 'x'.repeat(30_000);
const blocks: ContentBlock[] = [
  { type: 'text', text: 'Looking.' },
  { type: 'tool_use', id: 'toolu_1', name: 'search', input: { q: 'refunds' } },
];
const results: ContentBlock[] = [{ type: 'tool_result', toolUseId: 'toolu_1', content: bigResult }];
const tool: ToolSpec = {
  name: 'search',
  description: 'Searches.',
  inputSchema: { type: 'object', properties: { q: { type: 'string' } } },
};

describe('content helpers', () => {
  it('contentText keeps only text', () => {
    expect(contentText('plain')).toBe('plain');
    expect(contentText(blocks)).toBe('Looking.');
    expect(contentText(results)).toBe('');
  });

  it('contentForCounting includes tool calls and results as JSON', () => {
    expect(contentForCounting('plain')).toBe('plain');
    expect(contentForCounting(blocks)).toBe(`Looking.${JSON.stringify(blocks[1])}`);
    expect(contentForCounting(results).length).toBeGreaterThan(bigResult.length);
    expect(toolsForCounting(undefined)).toBe('');
    expect(toolsForCounting([])).toBe('');
    expect(toolsForCounting([tool])).toBe(JSON.stringify([tool]));
  });
});

describe('estimates with content blocks', () => {
  const history: ChatTurn[] = [
    { role: 'user', content: 'Refund policy?' },
    { role: 'assistant', content: blocks },
    { role: 'user', content: results },
  ];

  it('the gateway estimate counts tool results, and tool definitions when offered', () => {
    const plain = estimateInputTokens('sys', history);
    expect(plain).toBeGreaterThan(bigResult.length / 3);
    // Unchanged for plain text: ceil(chars / 3) + 8 per message and one more for the system.
    expect(estimateInputTokens('sys', [{ role: 'user', content: 'abcdef' }])).toBe(3 + 16);
    const withTools = estimateInputTokens('sys', history, [tool]);
    expect(withTools - plain).toBeGreaterThan(JSON.stringify([tool]).length / 3);
  });

  it('chat history fitting counts blocks too, so a huge tool result is dropped', () => {
    const fitted = fitHistory({
      turns: [
        ...history,
        { role: 'assistant', content: 'Done.' },
        { role: 'user', content: 'Thanks' },
      ],
      system: 'sys',
      contextWindow: 2_000,
      maxOutputTokens: 500,
    });
    expect(fitted).toEqual([{ role: 'user', content: 'Thanks' }]);
  });
});
