import { describe, expect, it } from 'vitest';
import type { CompatEvent } from '../src/plugins/compat/completion';
import {
  ChatCompletionBody,
  ChunkEncoder,
  DEFAULT_MAX_TOKENS,
  toChatCompletion,
  toCompatRequest,
} from '../src/plugins/compat/openai-shapes';

const meta = { id: 'chatcmpl-1', created: 1_700_000_000, model: 'mock-echo' };

function request(body: unknown, modelMax = 8192) {
  return toCompatRequest(ChatCompletionBody.parse(body), modelMax);
}

describe('OpenAI requests in the gateway shape', () => {
  it('joins system and developer messages into the system prompt', () => {
    const r = request({
      model: 'm',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'developer', content: [{ type: 'text', text: 'Use French.' }] },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Bon' },
            { type: 'text', text: 'jour' },
          ],
        },
      ],
    });
    expect(r.system).toBe('Be brief.\n\nUse French.');
    expect(r.messages).toEqual([{ role: 'user', content: 'Bonjour' }]);
    expect(r.maxOutputTokens).toBe(DEFAULT_MAX_TOKENS);
  });

  it('turns tool calls into tool_use blocks and a run of tool messages into one user turn', () => {
    const r = request({
      model: 'm',
      max_tokens: 50,
      max_completion_tokens: 60,
      stop: 'STOP',
      tools: [{ type: 'function', function: { name: 'f' } }],
      messages: [
        { role: 'user', content: 'go' },
        {
          role: 'assistant',
          content: 'Calling.',
          tool_calls: [
            { id: 'a', type: 'function', function: { name: 'f', arguments: '{"x":1}' } },
            { id: 'b', type: 'function', function: { name: 'f', arguments: '' } },
          ],
        },
        { role: 'tool', tool_call_id: 'a', content: 'one' },
        { role: 'tool', tool_call_id: 'b', content: [{ type: 'text', text: 'two' }] },
        { role: 'user', content: 'thanks' },
      ],
    });
    expect(r.messages).toEqual([
      { role: 'user', content: 'go' },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Calling.' },
          { type: 'tool_use', id: 'a', name: 'f', input: { x: 1 } },
          { type: 'tool_use', id: 'b', name: 'f', input: {} },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', toolUseId: 'a', content: 'one' },
          { type: 'tool_result', toolUseId: 'b', content: 'two' },
        ],
      },
      { role: 'user', content: 'thanks' },
    ]);
    expect(r.maxOutputTokens).toBe(60);
    expect(r.stopSequences).toEqual(['STOP']);
    expect(r.tools).toEqual([
      { name: 'f', description: '', inputSchema: { type: 'object', properties: {} } },
    ]);
  });

  it('caps the default output at the model maximum and needs a non-system message', () => {
    expect(
      request({ model: 'm', messages: [{ role: 'user', content: 'x' }] }, 100).maxOutputTokens,
    ).toBe(100);
    expect(() => request({ model: 'm', messages: [{ role: 'system', content: 'x' }] })).toThrow(
      /at least one non-system message/,
    );
  });

  it('rejects what it cannot carry', () => {
    for (const body of [
      { model: 'm', messages: [] },
      {
        model: 'm',
        messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }],
      },
      { model: 'm', n: 2, messages: [{ role: 'user', content: 'x' }] },
      { model: 'm', max_tokens: 0, messages: [{ role: 'user', content: 'x' }] },
    ]) {
      expect(ChatCompletionBody.safeParse(body).success).toBe(false);
    }
  });
});

describe('gateway events in OpenAI shapes', () => {
  const events: CompatEvent[] = [
    { type: 'text', text: 'Let me ' },
    { type: 'text', text: 'check.' },
    { type: 'tool_use', id: 't1', name: 'f', input: { a: 1 } },
    { type: 'tool_use', id: 't2', name: 'g', input: {} },
    {
      type: 'done',
      usage: { inputTokens: 10, outputTokens: 4 },
      stopReason: 'tool_use',
      stopSequence: null,
    },
  ];

  it('builds the chat.completion object', () => {
    expect(toChatCompletion(events, meta)).toEqual({
      ...meta,
      object: 'chat.completion',
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: 'Let me check.',
            refusal: null,
            tool_calls: [
              { id: 't1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } },
              { id: 't2', type: 'function', function: { name: 'g', arguments: '{}' } },
            ],
          },
          finish_reason: 'tool_calls',
          logprobs: null,
        },
      ],
      usage: { prompt_tokens: 10, completion_tokens: 4, total_tokens: 14 },
    });
    const cut: CompatEvent[] = [
      {
        type: 'done',
        usage: { inputTokens: 1, outputTokens: 1 },
        stopReason: 'max_tokens',
        stopSequence: null,
      },
    ];
    expect(toChatCompletion(cut, meta).choices[0]?.finish_reason).toBe('length');
    expect(toChatCompletion(cut, meta).choices[0]?.message.content).toBe('');
  });

  it('encodes chunks with tool call indexes and a usage chunk when asked', () => {
    const encoder = new ChunkEncoder(meta, true);
    const chunks = [encoder.start(), ...events.flatMap((e) => encoder.encode(e))] as Array<{
      choices: Array<{ delta: Record<string, unknown>; finish_reason: string | null }>;
      usage?: unknown;
    }>;
    expect(chunks.map((c) => c.choices[0]?.delta ?? null)).toEqual([
      { role: 'assistant', content: '' },
      { content: 'Let me ' },
      { content: 'check.' },
      {
        tool_calls: [
          { index: 0, id: 't1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } },
        ],
      },
      {
        tool_calls: [
          { index: 1, id: 't2', type: 'function', function: { name: 'g', arguments: '{}' } },
        ],
      },
      {},
      null,
    ]);
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe('tool_calls');
    expect(chunks.at(-1)).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 10, completion_tokens: 4, total_tokens: 14 },
    });
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    const plain = new ChunkEncoder(meta, false);
    expect(plain.encode(events[4] as CompatEvent)).toHaveLength(1);
    expect(plain.start()).not.toHaveProperty('usage');
  });
});
