import { describe, expect, it } from 'vitest';
import type { ChatTurn } from '../../ai/provider';
import { estimateTokens, fitHistory } from './context-window';

const user = (content: string): ChatTurn => ({ role: 'user', content });
const assistant = (content: string): ChatTurn => ({ role: 'assistant', content });
/** 400 characters: 100 tokens plus 4 of per-message overhead. */
const text = (tag: string) => tag.padEnd(400, '.');
const TURN = 104;

const SYSTEM = 'You are helpful.';
const OUTPUT = 1_000;
/** A context window leaving exactly `history` tokens for the history. */
const windowFor = (history: number) => history + OUTPUT + estimateTokens(SYSTEM);
const keep = (turns: ChatTurn[], history: number) =>
  fitHistory({ turns, system: SYSTEM, contextWindow: windowFor(history), maxOutputTokens: OUTPUT });

const u1 = user(text('u1'));
const a1 = assistant(text('a1'));
const u2 = user(text('u2'));
const a2 = assistant(text('a2'));
const u3 = user(text('u3'));
const turns = [u1, a1, u2, a2, u3];

describe('estimateTokens', () => {
  it('counts about four characters a token, plus a per-message overhead', () => {
    expect(estimateTokens('')).toBe(4);
    expect(estimateTokens('abcd')).toBe(5);
    expect(estimateTokens('abcde')).toBe(6);
    expect(estimateTokens(text('x'))).toBe(TURN);
  });
});

describe('fitHistory', () => {
  it('keeps everything that fits, unchanged', () => {
    expect(keep(turns, 5 * TURN)).toEqual(turns);
    expect(keep(turns, 100 * TURN)).toEqual(turns);
  });

  it('keeps the newest turns within the budget, a turn that exactly fits included', () => {
    expect(keep(turns, 3 * TURN)).toEqual([u2, a2, u3]);
    expect(keep(turns, 3 * TURN + TURN - 1)).toEqual([u2, a2, u3]);
  });

  it('starts with a user turn, dropping an assistant turn left first', () => {
    // Room for four: a1 u2 a2 u3, but a history may not open with the assistant.
    expect(keep(turns, 4 * TURN)).toEqual([u2, a2, u3]);
    expect(keep(turns, 2 * TURN)).toEqual([u3]);
    expect(keep([a1, u2], 2 * TURN)).toEqual([u2]);
  });

  it('keeps a contiguous run of the newest turns: an older turn never skips a bigger one', () => {
    const small = user('hi');
    const big = assistant('x'.repeat(4_000));
    expect(keep([small, big, u3], TURN + estimateTokens('hi'))).toEqual([u3]);
  });

  it('drops everything when the system prompt alone exceeds the budget', () => {
    const system = 's'.repeat(40_000); // 10,004 tokens
    const history = fitHistory({
      turns,
      system,
      contextWindow: 10_000,
      maxOutputTokens: 100,
    });
    expect(history).toEqual([]);
    // With room for the same system prompt, history comes back.
    expect(
      fitHistory({ turns, system, contextWindow: 10_004 + 100 + 3 * TURN, maxOutputTokens: 100 }),
    ).toEqual([u2, a2, u3]);
  });

  it('returns nothing when even the newest turn does not fit', () => {
    expect(keep(turns, TURN - 1)).toEqual([]);
    expect(keep([], 10 * TURN)).toEqual([]);
  });

  it('does not modify the turns it is given', () => {
    const given = [...turns];
    keep(given, 2 * TURN);
    expect(given).toEqual(turns);
  });
});
