import { describe, expect, it } from 'vitest';
import { createMockProvider, MOCK_FAIL_MARKER, mockTokenCount } from './mock';
import { MOCK_MODEL_ID } from './models';
import type { ModelRequest } from './provider';
import { collectStream } from './testing/collect';

function request(lastUser: string, over: Partial<ModelRequest> = {}): ModelRequest {
  return {
    model: MOCK_MODEL_ID,
    system: 'sys',
    messages: [
      { role: 'user', content: 'first question' },
      { role: 'assistant', content: 'an answer' },
      { role: 'user', content: lastUser },
    ],
    maxOutputTokens: 1000,
    ...over,
  };
}

describe('mock-echo', () => {
  it('echoes the last user message word by word, with deterministic usage', async () => {
    const out = await collectStream(
      createMockProvider({ chunkDelayMs: 0 }),
      request('hello  big world'),
    );
    expect(out.deltas).toEqual(['Echo: ', 'hello  ', 'big ', 'world']);
    expect(out.text).toBe('Echo: hello  big world');
    const prompt = `sysfirst questionan answerhello  big world`;
    expect(out.done).toEqual({
      type: 'done',
      usage: { inputTokens: Math.ceil(prompt.length / 4), outputTokens: Math.ceil(22 / 4) },
      stopReason: 'end_turn',
    });
  });

  it('gives the same answer every time', async () => {
    const provider = createMockProvider({ chunkDelayMs: 0 });
    const a = await collectStream(provider, request('same input'));
    const b = await collectStream(provider, request('same input'));
    expect(b).toEqual(a);
  });

  it('counts tokens as ceil(characters / 4)', () => {
    expect([mockTokenCount(''), mockTokenCount('abcd'), mockTokenCount('abcde')]).toEqual([
      0, 1, 2,
    ]);
  });

  it('pauses between chunks by default, and not at all with a delay of 0', async () => {
    const words = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
    let started = Date.now();
    await collectStream(createMockProvider(), request(words));
    // 41 chunks at ~5 ms each (timers may round a little early, hence 4).
    expect(Date.now() - started).toBeGreaterThanOrEqual(41 * 4);
    started = Date.now();
    await collectStream(createMockProvider({ chunkDelayMs: 0 }), request(words));
    expect(Date.now() - started).toBeLessThan(100);
  });

  it('stops at maxOutputTokens with stop reason max_tokens', async () => {
    const out = await collectStream(
      createMockProvider({ chunkDelayMs: 0 }),
      request('a fairly long message here', { maxOutputTokens: 3 }),
    );
    expect(out.text).toBe('Echo: a fair');
    expect(out.done?.stopReason).toBe('max_tokens');
    expect(out.done?.usage.outputTokens).toBe(3);
  });

  it('with the [[fail]] marker yields some text, then throws stream_interrupted', async () => {
    const out = await collectStream(
      createMockProvider({ chunkDelayMs: 0 }),
      request(`one two three ${MOCK_FAIL_MARKER}`),
    );
    expect(out.deltas).toEqual(['Echo: ', 'one ']);
    expect(out.done).toBeUndefined();
    expect(out.error).toMatchObject({ code: 'model.stream_interrupted', retryable: true });
  });

  it('stops within one chunk of an abort and throws model.cancelled', async () => {
    const ac = new AbortController();
    const out = await collectStream(
      createMockProvider({ chunkDelayMs: 0 }),
      request('one two three four', { signal: ac.signal }),
      (_, i) => {
        if (i === 1) ac.abort();
      },
    );
    expect(out.deltas).toEqual(['Echo: ', 'one ']);
    expect(out.error).toMatchObject({ code: 'model.cancelled', retryable: false });
  });

  it('an abort during a long pause ends the wait at once', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 30);
    const started = Date.now();
    const out = await collectStream(
      createMockProvider({ chunkDelayMs: 10_000 }),
      request('slow', { signal: ac.signal }),
    );
    expect(out.error?.code).toBe('model.cancelled');
    expect(out.deltas).toEqual([]);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('refuses other models', async () => {
    const out = await collectStream(
      createMockProvider(),
      request('x', { model: 'claude-opus-5-5' }),
    );
    expect(out.error?.code).toBe('model.unavailable');
  });

  it('lists itself as the free mock model', () => {
    expect(createMockProvider().models()).toEqual([
      expect.objectContaining({
        id: MOCK_MODEL_ID,
        provider: 'mock',
        inputPricePerMTok: '0',
        outputPricePerMTok: '0',
      }),
    ]);
  });
});

describe('mock-echo stop sequences', () => {
  it('cuts the echo at the earliest stop sequence and names it', async () => {
    const out = await collectStream(createMockProvider({ chunkDelayMs: 0 }), {
      model: 'mock-echo',
      messages: [{ role: 'user', content: 'one two ENDthree STOP four' }],
      maxOutputTokens: 100,
      stopSequences: ['STOP', 'END'],
    });
    expect(out.deltas.join('')).toBe('Echo: one two ');
    expect(out.done).toMatchObject({ stopReason: 'stop_sequence', stopSequence: 'END' });
  });

  it('ends normally when no stop sequence occurs', async () => {
    const out = await collectStream(createMockProvider({ chunkDelayMs: 0 }), {
      model: 'mock-echo',
      messages: [{ role: 'user', content: 'hello' }],
      maxOutputTokens: 100,
      stopSequences: ['zzz'],
    });
    expect(out.deltas.join('')).toBe('Echo: hello');
    expect(out.done?.stopReason).toBe('end_turn');
    expect(out.done).not.toHaveProperty('stopSequence');
  });
});
