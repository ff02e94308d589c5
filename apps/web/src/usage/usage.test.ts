import { describe, expect, it } from 'vitest';
import { toCsv } from './csv';
import { parseThresholds, spentShare } from './limits';
import { fromMicro, toMicro } from './money';
import { daysOf, fillDays, lastDays, toInstants } from './range';

describe('money', () => {
  it('sums decimal USDC exactly', () => {
    expect(toMicro('0.1') + toMicro('0.2')).toBe(toMicro('0.3'));
    expect(fromMicro(toMicro('12.500000'))).toBe('12.5');
    expect(fromMicro(toMicro('-0.000001'))).toBe('-0.000001');
    expect(toMicro('abc')).toBe(0n);
  });
});

describe('toCsv', () => {
  it('quotes what needs quoting and defuses spreadsheet formulas', () => {
    const rows = [
      { a: 'plain', b: 1, c: null },
      { a: 'with, comma', b: -2, c: 'say "hi"\nbye' },
      { a: '=HYPERLINK("x")', b: 0, c: '@me' },
    ];
    expect(toCsv(rows, ['a', 'b', 'c'])).toBe(
      'a,b,c\r\nplain,1,\r\n"with, comma",-2,"say ""hi""\nbye"\r\n"\'=HYPERLINK(""x"")",0,\'@me\r\n',
    );
  });
});

describe('day ranges', () => {
  it('covers whole UTC days, the last one included', () => {
    const range = lastDays(3, new Date('2026-03-10T15:00:00Z'));
    expect(range).toEqual({ from: '2026-03-08', to: '2026-03-10' });
    expect(toInstants(range)).toEqual({
      from: '2026-03-08T00:00:00.000Z',
      to: '2026-03-11T00:00:00.000Z',
    });
    expect(daysOf(range)).toEqual(['2026-03-08', '2026-03-09', '2026-03-10']);
    expect(daysOf({ from: '2026-03-10', to: '2026-03-08' })).toEqual([]);
    expect(daysOf({ from: '', to: '2026-03-08' })).toEqual([]);
  });

  it('fills days without calls with zeros', () => {
    const rows = [{ key: '2026-03-09', n: 5 }];
    const filled = fillDays({ from: '2026-03-08', to: '2026-03-10' }, rows, (d) => ({
      key: d,
      n: 0,
    }));
    expect(filled.map((r) => r.n)).toEqual([0, 5, 0]);
  });
});

describe('limits', () => {
  it('reads alert thresholds as percentages', () => {
    expect(parseThresholds('80, 50 100%')).toEqual({ ok: true, value: [0.5, 0.8, 1] });
    expect(parseThresholds('')).toEqual({ ok: true, value: [] });
    expect(parseThresholds('50, 150')).toMatchObject({ ok: false, error: /"150"/ });
    expect(parseThresholds('0')).toMatchObject({ ok: false });
    expect(parseThresholds('abc')).toMatchObject({ ok: false });
  });

  it('counts held money as spent for the progress bar', () => {
    expect(spentShare({ amount: '10', spent: '2.5', reserved: '2.5' })).toBe(0.5);
    expect(spentShare({ amount: '1', spent: '1.5', reserved: '0' })).toBe(1.5);
  });
});
