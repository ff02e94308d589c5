import { describe, expect, it } from 'vitest';
import { groupCommit } from './books';

/** Group commits on their own; the books that use them are tested in leases.test.ts. */

describe('groupCommit', () => {
  it('writes one item at once, and what queues meanwhile in one batch; a failure fails its batch only', async () => {
    const batches: number[][] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const write = groupCommit(async (items: number[]) => {
      batches.push(items);
      if (batches.length === 1) await gate;
      if (items.includes(13)) throw new Error('unlucky batch');
      return items.map((i) => i * 2);
    });
    const first = write(1);
    const rest = [2, 3, 13, 4].map((i) => write(i));
    release();
    expect(await first).toBe(2);
    const settled = await Promise.allSettled(rest);
    expect(batches).toEqual([[1], [2, 3, 13, 4]]);
    expect(settled.every((s) => s.status === 'rejected')).toBe(true);
    // The queue keeps working after a failed batch.
    expect(await write(5)).toBe(10);
    expect(batches.at(-1)).toEqual([5]);
  });

  it('caps a batch at maxBatch items', async () => {
    const sizes: number[] = [];
    const write = groupCommit(async (items: number[]) => {
      sizes.push(items.length);
      await new Promise((r) => setTimeout(r, 5));
      return items;
    }, 3);
    await Promise.all(Array.from({ length: 8 }, (_, i) => write(i)));
    expect(sizes).toEqual([1, 3, 3, 1]);
  });
});
