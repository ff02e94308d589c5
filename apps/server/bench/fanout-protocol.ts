/**
 * The fan-out bench's IPC between the parent (fanout.ts) and its two server children
 * (fanout-server.ts: the real app; fanout-baseline.ts: a raw `ws` broadcast). Both children
 * answer the same requests through `serveControl`, so they are driven identically.
 */

/** Milliseconds since the epoch with sub-millisecond precision, comparable across processes. */
export const now = (): number => performance.timeOrigin + performance.now();

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface FanoutReady {
  type: 'ready';
  port: number;
  /** What serves the subscriptions, for the report. */
  description: string;
}

/** The delta event the bench publishes; `sentAt` is its scheduled publish time (ms). */
export interface BenchDelta extends Record<string, unknown> {
  replyId: string;
  text: string;
  sentAt: number;
  seq: number;
}

/** A token-sized chunk of text, as a streaming reply would publish. */
export const DELTA_TEXT = 'the quick brown fox jumps over. ';

export type ControlRequest =
  | { id: number; type: 'stats'; gc: boolean }
  | {
      id: number;
      type: 'publish';
      /** The real app publishes on this conversation's topic; the baseline ignores it. */
      conversationId: string;
      replyId: string;
      count: number;
      ratePerSecond: number;
    };

export interface Stats {
  rss: number;
  heapUsed: number;
  /** V8 heap pages held (live objects, fragmentation and free space). */
  heapTotal: number;
  /** Memory outside the V8 heap that V8 knows of (Buffers and other native backing stores). */
  external: number;
  /** process.cpuUsage() user + system, in ms. */
  cpuMs: number;
  /** Sockets the server holds open. */
  sockets: number;
}

export interface PublishResult {
  published: number;
  failed: number;
  firstError: string | null;
  /** How late publishes started against their schedule (server event loop busy), ms. */
  lagP99: number;
  lagMax: number;
  /** Time for publish() to resolve (app: insert + NOTIFY transaction), ms. */
  publishP50: number;
  publishMax: number;
}

export type ControlResponse =
  | ({ id: number; type: 'stats' } & Stats)
  | ({ id: number; type: 'published' } & PublishResult)
  | { id: number; type: 'error'; message: string };

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}

/**
 * Publishes `count` events at a steady rate. Each is due at start + i / rate; a timer to a
 * millisecond before, then a setImmediate spin (I/O still runs) hits the due time to well
 * under a millisecond. `sentAt` is the due time, so a server too busy to publish on time is
 * charged the delay (no coordinated omission).
 */
async function publishSteadily(
  req: Extract<ControlRequest, { type: 'publish' }>,
  publishOne: (delta: BenchDelta) => Promise<unknown>,
): Promise<PublishResult> {
  const interval = 1000 / req.ratePerSecond;
  const start = now() + 20;
  const lags: number[] = [];
  const durations: number[] = [];
  let failed = 0;
  let firstError: string | null = null;
  const pending: Promise<void>[] = [];
  for (let seq = 0; seq < req.count; seq++) {
    const due = start + seq * interval;
    const coarse = due - now() - 1;
    if (coarse > 0) await sleep(coarse);
    while (now() < due) await new Promise<void>((resolve) => setImmediate(resolve));
    const startedAt = now();
    lags.push(startedAt - due);
    const delta: BenchDelta = { replyId: req.replyId, text: DELTA_TEXT, sentAt: due, seq };
    pending.push(
      publishOne(delta).then(
        () => {
          durations.push(now() - startedAt);
        },
        (err: unknown) => {
          failed++;
          firstError ??= err instanceof Error ? err.message : String(err);
        },
      ),
    );
  }
  await Promise.all(pending);
  lags.sort((a, b) => a - b);
  durations.sort((a, b) => a - b);
  return {
    published: req.count - failed,
    failed,
    firstError,
    lagP99: percentile(lags, 99),
    lagMax: lags.at(-1) ?? 0,
    publishP50: percentile(durations, 50),
    publishMax: durations.at(-1) ?? 0,
  };
}

async function collectStats(runGc: boolean, sockets: () => number): Promise<Stats> {
  if (runGc) {
    if (!globalThis.gc) throw new Error('start the child with --expose-gc');
    // Twice, a turn apart: the first pass can leave finalizable garbage for the second.
    globalThis.gc();
    await new Promise<void>((resolve) => setImmediate(resolve));
    globalThis.gc();
  }
  const mem = process.memoryUsage();
  const cpu = process.cpuUsage();
  return {
    rss: mem.rss,
    heapUsed: mem.heapUsed,
    heapTotal: mem.heapTotal,
    external: mem.external,
    cpuMs: (cpu.user + cpu.system) / 1000,
    sockets: sockets(),
  };
}

/** Answers the parent's requests; one at a time, each with the id it came with. */
export function serveControl(opts: {
  publishOne: (conversationId: string, delta: BenchDelta) => Promise<unknown>;
  sockets: () => number;
}): void {
  const reply = (m: ControlResponse) => process.send?.(m);
  process.on('message', (raw) => {
    const req = raw as ControlRequest;
    const run = async (): Promise<ControlResponse> => {
      if (req.type === 'stats') {
        return { id: req.id, type: 'stats', ...(await collectStats(req.gc, opts.sockets)) };
      }
      const result = await publishSteadily(req, (delta) =>
        opts.publishOne(req.conversationId, delta),
      );
      return { id: req.id, type: 'published', ...result };
    };
    run().then(reply, (err: unknown) =>
      reply({
        id: req.id,
        type: 'error',
        message: err instanceof Error ? err.message : String(err),
      }),
    );
  });
}
