import { describe, expect, it } from 'vitest';
import { instantInput, MAX_INPUT_DEPTH, rawInputIssues } from './input';
import { decodeCursor, encodeCursor } from './pagination';

const paths = (input: unknown) => rawInputIssues(input).map((i) => i.path);

function nestedArrays(depth: number): unknown {
  let v: unknown = 'bottom';
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

describe('rawInputIssues', () => {
  it('passes well-formed text, surrogate pairs and non-text values', () => {
    expect(
      rawInputIssues({ a: 'plain', b: 'emoji 😀 and 中文', c: [1, true, null], d: { e: '\t\n' } }),
    ).toEqual([]);
    expect(rawInputIssues(undefined)).toEqual([]);
  });

  it('names NUL and lone surrogates wherever they are, object keys included', () => {
    expect(paths({ name: 'a\u0000b' })).toEqual([['name']]);
    expect(paths({ list: ['ok', 'x\ud800y'] })).toEqual([['list', 1]]);
    expect(paths({ tail: '\udc00' })).toEqual([['tail']]);
    expect(paths({ swapped: '\udc00\ud800' })).toEqual([['swapped']]);
    expect(paths({ schema: { 'k\u0000': 1 } })).toEqual([['schema', 'k\u0000']]);
    expect(paths('a\u0000')).toEqual([[]]);
    const [issue] = rawInputIssues({ name: 'a\u0000' });
    expect(issue).toMatchObject({ code: 'custom', message: 'must not contain NUL characters' });
  });

  it('walks form data: field names and values (file names are sanitised on upload)', () => {
    const form = new FormData();
    form.set('projectId', 'x\u0000');
    form.set('e\u0000', 'v');
    form.set('file', new Blob(['bytes \u0000 are fine']), 'a\u0000.txt');
    form.set('ok', 'fine');
    expect(paths(form).sort()).toEqual([['e\u0000'], ['projectId']]);
  });

  it(`refuses nesting past ${MAX_INPUT_DEPTH} levels, at any depth, without recursing`, () => {
    expect(rawInputIssues({ a: nestedArrays(MAX_INPUT_DEPTH - 1) })).toEqual([]);
    expect(paths({ a: nestedArrays(MAX_INPUT_DEPTH) })).toHaveLength(1);
    // Deeper than any recursive walk could go.
    const deep = JSON.parse(`{"a":${'['.repeat(200_000)}${']'.repeat(200_000)}}`);
    const issues = rawInputIssues(deep);
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path[0]).toBe('a');
  });

  it('reports a bounded number of issues', () => {
    const many = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`f${i}`, '\u0000']));
    expect(rawInputIssues(many)).toHaveLength(20);
  });
});

describe('instantInput', () => {
  it('takes ISO 8601 with an offset as a Date within years 0001–9999 (UTC)', () => {
    expect(instantInput.parse('2024-02-29T12:00:00+02:00')).toEqual(
      new Date('2024-02-29T10:00:00Z'),
    );
    expect(instantInput.parse('0001-01-01T00:00:00Z').getUTCFullYear()).toBe(1);
    expect(instantInput.parse('9999-12-31T23:59:59.999Z').getUTCFullYear()).toBe(9999);
  });

  it('refuses dates outside that range once the offset is applied', () => {
    for (const s of [
      '9999-12-31T23:59:59-23:59', // year 10000 in UTC
      '0000-01-01T00:00:00Z',
      '0001-01-01T00:00:00+01:00', // year 0 in UTC
      '+010000-01-01T00:00:00Z',
      '2024-02-30T00:00:00Z',
    ]) {
      expect(instantInput.safeParse(s).success, s).toBe(false);
    }
  });
});

describe('cursors', () => {
  const id = '00000000-0000-4000-8000-000000000000';
  const raw = (at: string) => Buffer.from(JSON.stringify([at, id])).toString('base64url');

  it('round-trip, and a date PostgreSQL cannot hold is a bad cursor, not a database error', () => {
    const at = new Date('2024-05-01T00:00:00.123Z');
    expect(decodeCursor(encodeCursor({ at, id }))).toEqual({ at, id });
    expect(() => decodeCursor(raw('0000-01-01T00:00:00Z'))).toThrow(
      expect.objectContaining({ code: 'pagination.invalid_cursor' }),
    );
  });
});
