import { describe, expect, it } from 'vitest';
import { sanitizeFileName } from './names';

/** Median of a few timings of `fn`, in ms. */
function time(fn: () => void): number {
  const runs = [0, 1, 2, 3, 4].map(() => {
    const t0 = performance.now();
    fn();
    return performance.now() - t0;
  });
  return runs.sort((a, b) => a - b)[2] ?? 0;
}

describe('sanitizeFileName', () => {
  it('keeps the last segment, drops controls, lone surrogates and edge dots', () => {
    expect(sanitizeFileName('../../etc/passwd')).toBe('passwd');
    expect(sanitizeFileName('..\\..\\boot.ini')).toBe('boot.ini');
    expect(sanitizeFileName('  ..report\u202Etxt.exe. . ')).toBe('reporttxt.exe');
    expect(sanitizeFileName('a\ud800b.md')).toBe('ab.md');
    expect(sanitizeFileName('...')).toBe('file');
  });

  it('cuts long names to 200 characters and keeps the extension', () => {
    const name = sanitizeFileName(`${'é'.repeat(300)}.pdf`);
    expect([...name]).toHaveLength(200);
    expect(name.endsWith('.pdf')).toBe(true);
  });

  it('runs of dots cost linear time (a trailing-dots regex was quadratic on "....x")', () => {
    const small = `${'.'.repeat(2_000)}x`;
    const large = `${'.'.repeat(20_000)}x`;
    expect(sanitizeFileName(large)).toBe('x');
    const ratio =
      time(() => sanitizeFileName(large)) /
      Math.max(
        time(() => sanitizeFileName(small)),
        0.05,
      );
    // Linear: ~10x (the input is cut at 4,096 characters, so less); quadratic was ~100x.
    expect(ratio).toBeLessThan(30);
    expect(time(() => sanitizeFileName(`a${' .'.repeat(500_000)}b`))).toBeLessThan(200);
  });
});
