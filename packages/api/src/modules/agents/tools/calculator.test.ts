import { describe, expect, it } from 'vitest';
import { CalcError, evaluate } from './calculator';

describe('calculator', () => {
  it.each([
    ['1 + 2 * 3', 7],
    ['(1 + 2) * 3', 9],
    ['2 ^ 3 ^ 2', 512],
    ['-2 ** 2', 4],
    ['10 % 4', 2],
    ['sqrt(16) + abs(-3)', 7],
    ['max(1, 5, 3) - min(4, 2)', 3],
    ['round(2.5) + floor(1.9) + ceil(1.1)', 6],
    ['.5 * 4', 2],
    ['1e3 / 4', 250],
    ['2 * pi', 2 * Math.PI],
  ])('%s = %d', (expression, expected) => {
    expect(evaluate(expression as string)).toBeCloseTo(expected as number);
  });

  it.each([
    ['', 'empty'],
    ['1 +', 'unexpected end'],
    ['1 / 0', 'division by zero'],
    ['process.exit(1)', 'unknown symbol'],
    ['constructor', 'unknown symbol'],
    ['__proto__(1)', 'unknown symbol'],
    ['toString(1)', 'unknown symbol'],
    ['(1', 'expected ")"'],
    ['2 3', 'unexpected "3"'],
    ['10 ^ 400', 'not a finite number'],
    [`${'('.repeat(60)}1${')'.repeat(60)}`, 'nested too deeply'],
    ['1+'.repeat(300), 'longer than'],
  ])('refuses %j (%s)', (expression, message) => {
    expect(() => evaluate(expression)).toThrow(CalcError);
    expect(() => evaluate(expression)).toThrow(message);
  });
});
