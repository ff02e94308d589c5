import { describe, expect, it } from 'vitest';
import { createMockProvider, MOCK_FAIL_MARKER, mockTokenCount } from './mock';
import { toolDirectives } from './mock-tools';
import { MOCK_MODEL_ID } from './models';
import type { ChatTurn, ModelRequest, ToolSpec } from './provider';
import { collectStream } from './testing/collect';

const search: ToolSpec = {
  name: 'search',
  description: 'Searches the docs.',
  inputSchema: { type: 'object', properties: { q: { type: 'string' } } },
};

const mock = () => createMockProvider({ chunkDelayMs: 0 });

function request(messages: ChatTurn[], over: Partial<ModelRequest> = {}): ModelRequest {
  return {
    model: MOCK_MODEL_ID,
    system: 'sys',
    messages,
    maxOutputTokens: 1000,
    tools: [search],
    ...over,
  };
}

const ask = (text: string): ChatTurn[] => [{ role: 'user', content: text }];

describe('mock-echo tool use', () => {
  it('a [[tool:…]] directive with tools offered becomes that call, stop reason tool_use', async () => {
    const text = 'Find it. [[tool:search {"q": "refund policy"}]]';
    const out = await collectStream(mock(), request(ask(text)));
    const call = { id: 'toolu_mock_1_1', name: 'search', input: { q: 'refund policy' } };
    expect(out.events).toEqual([
      { type: 'tool_use', ...call },
      {
        type: 'done',
        usage: {
          inputTokens: mockTokenCount(`sys${JSON.stringify([search])}${text}`),
          outputTokens: mockTokenCount(JSON.stringify([call])),
        },
        stopReason: 'tool_use',
      },
    ]);
  });

  it('several directives are several calls, in order; no JSON means {}; JSON may hold ]]', async () => {
    const history: ChatTurn[] = [
      { role: 'user', content: 'earlier' },
      { role: 'assistant', content: 'ok' },
      { role: 'user', content: '[[tool:search {"q": [["a"]]}]] then [[tool:list_files]]' },
    ];
    const out = await collectStream(mock(), request(history));
    expect(out.toolUses).toEqual([
      { type: 'tool_use', id: 'toolu_mock_3_1', name: 'search', input: { q: [['a']] } },
      { type: 'tool_use', id: 'toolu_mock_3_2', name: 'list_files', input: {} },
    ]);
  });

  it('is the same on every run', async () => {
    const req = request(ask('[[tool:search {"q": "x"}]]'));
    expect(await collectStream(mock(), req)).toEqual(await collectStream(mock(), req));
  });

  it('echoes when no tools are offered, or the directive input is not a JSON object', async () => {
    const noTools = await collectStream(mock(), request(ask('[[tool:search {}]]'), { tools: [] }));
    expect(noTools.text).toBe('Echo: [[tool:search {}]]');
    const notObject = await collectStream(mock(), request(ask('[[tool:search [1] ]]')));
    expect(notObject.toolUses).toEqual([]);
    expect(notObject.done?.stopReason).toBe('end_turn');
    const broken = await collectStream(mock(), request(ask('[[tool:search {"q": ]]')));
    expect(broken.text).toBe('Echo: [[tool:search {"q": ]]');
  });

  it('a call too long for maxOutputTokens is cut off: no call, stop reason max_tokens', async () => {
    const out = await collectStream(
      mock(),
      request(ask(`[[tool:search {"q": "${'long '.repeat(20)}"}]]`), { maxOutputTokens: 10 }),
    );
    expect(out.toolUses).toEqual([]);
    expect(out.done).toMatchObject({ stopReason: 'max_tokens', usage: { outputTokens: 10 } });
  });

  it('answers a turn of tool results with their content, errors marked', async () => {
    const messages: ChatTurn[] = [
      { role: 'user', content: '[[tool:search {"q": "a"}]] [[tool:search {"q": "b"}]]' },
      {
        role: 'assistant',
        content: [
          { type: 'tool_use', id: 'toolu_mock_1_1', name: 'search', input: { q: 'a' } },
          { type: 'tool_use', id: 'toolu_mock_1_2', name: 'search', input: { q: 'b' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', toolUseId: 'toolu_mock_1_1', content: 'found 3 pages' },
          { type: 'tool_result', toolUseId: 'toolu_mock_1_2', content: 'timed out', isError: true },
        ],
      },
    ];
    const out = await collectStream(mock(), request(messages));
    const reply = 'Result: found 3 pages\nResult (error): timed out';
    expect(out.text).toBe(reply);
    expect(out.toolUses).toEqual([]);
    // Blocks count as their JSON, tool definitions included: deterministic, and more than
    // the bare text, as real tokenizers would have it.
    const [first, calls, results] = messages.map((m) =>
      typeof m.content === 'string' ? m.content : m.content.map((b) => JSON.stringify(b)).join(''),
    );
    expect(out.done).toEqual({
      type: 'done',
      usage: {
        inputTokens: mockTokenCount(`sys${JSON.stringify([search])}${first}${calls}${results}`),
        outputTokens: mockTokenCount(reply),
      },
      stopReason: 'end_turn',
    });
  });

  it('runs a whole agent loop offline: directive, call, result, answer', async () => {
    const provider = mock();
    const messages: ChatTurn[] = ask('What changed? [[tool:search {"q": "changelog"}]]');
    const first = await collectStream(provider, request(messages));
    expect(first.done?.stopReason).toBe('tool_use');
    messages.push(
      { role: 'assistant', content: first.toolUses.map((c) => ({ ...c })) },
      {
        role: 'user',
        content: first.toolUses.map((c) => ({
          type: 'tool_result' as const,
          toolUseId: c.id,
          content: `${c.name} ran with ${JSON.stringify(c.input)}`,
        })),
      },
    );
    const second = await collectStream(provider, request(messages));
    expect(second.text).toBe('Result: search ran with {"q":"changelog"}');
    expect(second.done?.stopReason).toBe('end_turn');
  });

  it('the fail marker wins over directives', async () => {
    const out = await collectStream(
      mock(),
      request(ask(`one two three [[tool:search {}]] ${MOCK_FAIL_MARKER}`)),
    );
    expect(out.toolUses).toEqual([]);
    expect(out.error?.code).toBe('model.stream_interrupted');
  });

  it('an abort before the call is yielded throws model.cancelled', async () => {
    const out = await collectStream(
      mock(),
      request(ask('[[tool:search {}]]'), { signal: AbortSignal.abort() }),
    );
    expect(out.events).toEqual([]);
    expect(out.error?.code).toBe('model.cancelled');
  });
});

describe('tool directive parsing', () => {
  it('reads a directive up to the next one: JSON holding a directive opening is no input', () => {
    expect(toolDirectives('[[tool:search {"q": "see [[tool:list_files]] here"}]]', 1)).toEqual([
      { id: 'toolu_mock_1_1', name: 'list_files', input: {} },
    ]);
    expect(toolDirectives('[[tool:a {"q": "]]"} ]] [[tool:b\n]]', 2)).toEqual([
      { id: 'toolu_mock_2_1', name: 'a', input: { q: ']]' } },
      { id: 'toolu_mock_2_2', name: 'b', input: {} },
    ]);
    // Text between the object and `]]` makes no call; an escaped quote does not end a string.
    expect(toolDirectives('[[tool:a {"q": 1} x]] [[tool:b {"q": "\\"}"} ]]', 3)).toEqual([
      { id: 'toolu_mock_3_1', name: 'b', input: { q: '"}' } },
    ]);
  });

  // The old parser re-parsed the JSON up to every later `]]`: an unterminated string
  // followed by many `]]` took time quadratic in the prompt (40 KB blocked 329 ms).
  it('takes time linear in the prompt, however adversarial', () => {
    const adversarial = (chars: number) => {
      const unit = `[[tool:search {"q": "${']]'.repeat(200)} [[tool:x {"a": [[[`;
      return `${unit.repeat(Math.ceil(chars / 2 / unit.length))}[[tool:search {"q": "${']]'.repeat(chars / 4)}`;
    };
    const fastest = (text: string) => {
      let best = Number.POSITIVE_INFINITY;
      for (let i = 0; i < 5; i++) {
        const started = performance.now();
        expect(toolDirectives(text, 1)).toEqual([]);
        best = Math.min(best, performance.now() - started);
      }
      return best;
    };
    const small = adversarial(40_000);
    const large = adversarial(400_000);
    expect(large.length / small.length).toBeCloseTo(10, 0);
    const ratio = fastest(large) / Math.max(fastest(small), 0.05);
    expect(ratio).toBeLessThan(30);
    expect(fastest(large)).toBeLessThan(1_000);
  });
});
