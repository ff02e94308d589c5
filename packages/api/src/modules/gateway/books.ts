/**
 * Group commits for the gateway's books (leases.ts): the writes that arrive while one
 * batch is being written go together in the next, so a hot project's rows are locked and
 * its WAL flushed once per batch instead of once per call.
 */

/**
 * Runs `write` on everything queued while the previous run was busy: a call alone is written
 * at once; under load the batches grow by themselves. A failed run fails each of its items.
 */
export function groupCommit<I, O>(
  write: (items: I[]) => Promise<O[]>,
  maxBatch = 256,
): (item: I) => Promise<O> {
  let queue: Array<{ item: I; resolve: (o: O) => void; reject: (e: unknown) => void }> = [];
  let running = false;
  async function drain() {
    running = true;
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(maxBatch);
      try {
        const out = await write(batch.map((b) => b.item));
        for (const [i, b] of batch.entries()) b.resolve(out[i] as O);
      } catch (err) {
        for (const b of batch) b.reject(err);
      }
    }
    running = false;
  }
  return (item) =>
    new Promise<O>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      if (!running) void drain();
    });
}
