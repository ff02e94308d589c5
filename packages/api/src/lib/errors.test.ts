import { describe, expect, it } from 'vitest';
import { appErrorCodes, errorTables, failureCodes } from './errors';

const repeats = (codes: string[]) => codes.filter((code, i) => codes.indexOf(code) !== i);

describe('app error codes', () => {
  it('are each declared by exactly one module', () => {
    const declared = errorTables.flatMap((table) => Object.keys(table));
    expect(repeats(declared)).toEqual([]);
    expect(Object.keys(appErrorCodes).sort()).toEqual([...declared].sort());
  });

  it('map to the transport code their module declares', () => {
    for (const table of errorTables) {
      for (const [code, { transport }] of Object.entries(table)) {
        expect(appErrorCodes[code as keyof typeof appErrorCodes]).toBe(transport);
      }
    }
  });

  it('keep failure codes of background jobs distinct and dotted', () => {
    expect(repeats(failureCodes)).toEqual([]);
    for (const code of failureCodes) expect(code).toMatch(/^[a-z]+\.[a-z_]+$/);
  });
});
