/**
 * The fan-out suite of `pnpm bench`: N WebSocket subscribers of one conversation's
 * chat.onEvent, events published at a steady rate through the app's event bus; delivery
 * latency (p50/p99/max) for every (subscriber, event) pair and memory per idle subscribed
 * connection, each beside a raw `ws` broadcast measured in the same run. The app
 * (fanout-server.ts) and the baseline (fanout-baseline.ts) run in separate children, one at a
 * time, a fresh pair per N; this process is the load generator, speaking the raw tRPC WS
 * protocol with plain `ws` clients.
 *
 * The publish rate is steady within a run and scaled with N so that every run asks for the
 * same deliveries per second (10,000/s: 10 events/s at N = 1,000, 2/s at 5,000; at most
 * 20/s): a fixed 20/s would be 100,000 frames/s at N = 5,000, which saturates a small
 * machine (even the raw baseline) so latency would only measure the backlog. Overrides:
 * BENCH_FANOUT_SIZES (default "1000,5000"), BENCH_FANOUT_RATE (events/s, the same for every
 * N), BENCH_FANOUT_SECONDS (publishing time per run, default 5), BENCH_FANOUT_CPU_PROF (a
 * directory: each server child writes a V8 CPU profile there).
 */
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import WebSocket, { type RawData } from 'ws';
import {
  type ControlRequest,
  type ControlResponse,
  type FanoutReady,
  now,
  type PublishResult,
  percentile,
  type Stats,
  sleep,
} from './fanout-protocol';
import { record as recordGoal } from './goals';
import { markdownTable } from './report';
import { mutate, startChild, stopChild } from './shared';

const SIZES = (process.env.BENCH_FANOUT_SIZES ?? '1000,5000')
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => Number.isInteger(n) && n > 0);
const FIXED_RATE = process.env.BENCH_FANOUT_RATE ? Number(process.env.BENCH_FANOUT_RATE) : null;
const DELIVERIES_PER_SECOND = 10_000;
const MAX_RATE = 20;
const SECONDS = Number(process.env.BENCH_FANOUT_SECONDS ?? 5);
/** Events per second for N subscribers. */
const rateFor = (n: number) =>
  FIXED_RATE ?? Math.min(MAX_RATE, Math.max(1, Math.round(DELIVERIES_PER_SECOND / n)));
const eventsFor = (n: number) => Math.max(1, Math.round(rateFor(n) * SECONDS));
/** Sockets opened concurrently while subscribing. */
const BATCH = 200;
const WARMUP_SUBSCRIBERS = 50;
const WARMUP_EVENTS = 10;
const CONNECT_TIMEOUT_MS = 20_000;
/** After the last publish, how long deliveries may trickle in, and the longest quiet gap. */
const DRAIN_MAX_MS = 15_000;
const DRAIN_QUIET_MS = 3_000;
const IDLE_MS = 1_000;
/** BENCH_FANOUT_CPU_PROF=<dir>: each server child writes a V8 CPU profile there on exit. */
const PROFILE_ARGS = process.env.BENCH_FANOUT_CPU_PROF
  ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_FANOUT_CPU_PROF}`]
  : [];
const PASSWORD = 'correct horse battery staple';

type SideName = 'app' | 'baseline';

const SIDES: Record<SideName, { file: string; label: string; path: string }> = {
  baseline: { file: './fanout-baseline.ts', label: 'raw ws', path: '/' },
  app: { file: './fanout-server.ts', label: 'app', path: '/trpc?connectionParams=1' },
};

/** Request/response over a child's IPC channel. */
class Control {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (m: ControlResponse) => void; reject: (e: Error) => void }
  >();

  constructor(private readonly child: ChildProcess) {
    child.on('message', (raw) => {
      const m = raw as ControlResponse;
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p?.resolve(m);
    });
    child.once('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`server exited (${code})`));
      this.pending.clear();
    });
  }

  private async request(req: ControlRequest): Promise<ControlResponse> {
    const res = await new Promise<ControlResponse>((resolve, reject) => {
      this.pending.set(req.id, { resolve, reject });
      this.child.send(req);
    });
    if (res.type === 'error') throw new Error(res.message);
    return res;
  }

  async stats(gc: boolean): Promise<Stats> {
    const res = await this.request({ id: this.nextId++, type: 'stats', gc });
    if (res.type !== 'stats') throw new Error(`unexpected ${res.type}`);
    return res;
  }

  async publish(
    opts: Omit<Extract<ControlRequest, { type: 'publish' }>, 'id' | 'type'>,
  ): Promise<PublishResult> {
    const res = await this.request({ id: this.nextId++, type: 'publish', ...opts });
    if (res.type !== 'published') throw new Error(`unexpected ${res.type}`);
    return res;
  }
}

/** Deliveries of one set of subscribers: one slot per (subscriber, event). */
interface Round {
  events: number;
  latency: Float64Array;
  seen: Uint8Array;
  delivered: number;
  duplicates: number;
  /** Frames after "started" that were not a bench delta (errors, stops, reconnects). */
  strays: number;
  firstStray: string | null;
  /** Sockets closed by the server while subscribed. */
  dropped: number;
  frameBytes: number;
  sockets: WebSocket[];
  closing: boolean;
}

function createRound(subscribers: number, events: number): Round {
  return {
    events,
    latency: new Float64Array(subscribers * events),
    seen: new Uint8Array(subscribers * events),
    delivered: 0,
    duplicates: 0,
    strays: 0,
    firstStray: null,
    dropped: 0,
    frameBytes: 0,
    sockets: [],
    closing: false,
  };
}

function frameText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('latin1');
  if (Array.isArray(data)) return Buffer.concat(data).toString('latin1');
  return Buffer.from(data).toString('latin1');
}

/** The number after `key` in a JSON text (the load generator skips JSON.parse). */
function numberAfter(text: string, key: string): number {
  const at = text.indexOf(key);
  if (at < 0) return Number.NaN;
  return Number.parseFloat(text.slice(at + key.length, at + key.length + 32));
}

function record(round: Round, subscriber: number, receivedAt: number, text: string): void {
  const sentAt = numberAfter(text, '"sentAt":');
  const seq = numberAfter(text, '"seq":');
  if (Number.isNaN(sentAt) || !Number.isInteger(seq) || seq < 0 || seq >= round.events) {
    round.strays++;
    round.firstStray ??= text.slice(0, 200);
    return;
  }
  const slot = subscriber * round.events + seq;
  if (round.seen[slot]) {
    round.duplicates++;
    return;
  }
  round.seen[slot] = 1;
  round.latency[round.delivered++] = receivedAt - sentAt;
  round.frameBytes = text.length;
}

/** Opens one socket, sends `hello`, and resolves once the server answers "started". */
function subscribe(url: string, hello: string[], round: Round, index: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true });
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error('no "started" in time')), CONNECT_TIMEOUT_MS);
    ws.on('open', () => {
      for (const m of hello) ws.send(m);
    });
    ws.on('message', (data) => {
      const receivedAt = now();
      const text = frameText(data);
      // tRPC's keep-alive: an unanswered PING closes the socket after pongWaitMs.
      if (text === 'PING') return ws.send('PONG');
      if (settled) return record(round, index, receivedAt, text);
      if (!text.includes('"started"')) return fail(new Error(text.slice(0, 200)));
      settled = true;
      clearTimeout(timer);
      resolve(ws);
    });
    ws.on('unexpected-response', (req, res) => {
      req.destroy();
      fail(new Error(`HTTP ${res.statusCode}`));
    });
    ws.on('error', (err) => fail(err));
    ws.on('close', (code, reason) => {
      if (!settled) fail(new Error(`closed ${code} ${String(reason)}`));
      else if (!round.closing) round.dropped++;
    });
  });
}

/** Subscribes `count` sockets, BATCH at a time; failures are counted by reason, not thrown. */
async function openRound(
  url: string,
  hello: string[],
  round: Round,
  count: number,
  progress: (done: number) => void,
): Promise<{ failed: number; reasons: Map<string, number> }> {
  const reasons = new Map<string, number>();
  let failed = 0;
  for (let start = 0; start < count; start += BATCH) {
    const end = Math.min(count, start + BATCH);
    const batch = await Promise.allSettled(
      Array.from({ length: end - start }, (_, i) => subscribe(url, hello, round, start + i)),
    );
    for (const r of batch) {
      if (r.status === 'fulfilled') round.sockets.push(r.value);
      else {
        failed++;
        const reason = r.reason instanceof Error ? r.reason.message : String(r.reason);
        reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
      }
    }
    progress(end);
  }
  return { failed, reasons };
}

function closeRound(round: Round): void {
  round.closing = true;
  for (const ws of round.sockets) ws.terminate();
  round.sockets = [];
}

/** Waits for `expected` deliveries, giving up after a quiet gap or the overall limit. */
async function drain(round: Round, expected: number): Promise<void> {
  const deadline = Date.now() + DRAIN_MAX_MS;
  let last = round.delivered;
  let lastChange = Date.now();
  while (round.delivered < expected && Date.now() < deadline) {
    await sleep(25);
    if (round.delivered !== last) {
      last = round.delivered;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > DRAIN_QUIET_MS) break;
  }
}

/** Waits until the server holds `sockets` open (closes are processed asynchronously). */
async function settleSockets(control: Control, sockets: number): Promise<Stats> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const stats = await control.stats(false);
    if (stats.sockets <= sockets || Date.now() > deadline) return stats;
    await sleep(100);
  }
}

interface SideResult {
  n: number;
  events: number;
  rate: number;
  subscribed: number;
  connectFailures: string;
  connectSeconds: number;
  expected: number;
  delivered: number;
  duplicates: number;
  strays: number;
  firstStray: string | null;
  dropped: number;
  p50: number;
  p99: number;
  max: number;
  rssKiB: number;
  heapKiB: number;
  heapTotalKiB: number;
  externalKiB: number;
  cpuUsPerDelivery: number;
  publish: PublishResult;
  loadGenUtilization: number;
  frameBytes: number;
  description: string;
}

/** Registers a user who owns a conversation; returns the socket hello for it. */
async function appHello(origin: string): Promise<{ hello: string[]; conversationId: string }> {
  const session = await mutate<{ accessToken: string }>(origin, 'auth.register', {
    email: `fanout.${Date.now()}@example.com`,
    password: PASSWORD,
    name: 'Fan-out bench',
  });
  const token = session.accessToken;
  const project = await mutate<{ id: string }>(
    origin,
    'projects.create',
    { name: 'Fan-out' },
    token,
  );
  const conversation = await mutate<{ id: string }>(
    origin,
    'chat.conversations.create',
    { projectId: project.id, title: 'Fan-out bench' },
    token,
  );
  return {
    conversationId: conversation.id,
    hello: [
      JSON.stringify({ method: 'connectionParams', data: { token } }),
      JSON.stringify({
        id: 1,
        method: 'subscription',
        params: { path: 'chat.onEvent', input: { conversationId: conversation.id } },
      }),
    ],
  };
}

const kib = (bytes: number, n: number) => (n > 0 ? bytes / n / 1024 : Number.NaN);

async function measureSide(side: SideName, n: number): Promise<SideResult> {
  const spec = SIDES[side];
  const say = (s: string) => process.stdout.write(s);
  say(`  ${spec.label}: starting server… `);
  const { child, ready } = await startChild<FanoutReady>(spec.file, {
    execArgv: ['--expose-gc', ...PROFILE_ARGS],
  }).catch((err: unknown) => {
    console.log('failed');
    throw err;
  });
  const control = new Control(child);
  const rounds: Round[] = [];
  try {
    const origin = `http://127.0.0.1:${ready.port}`;
    const url = `ws://127.0.0.1:${ready.port}${spec.path}`;
    const { hello, conversationId } =
      side === 'app'
        ? await appHello(origin)
        : {
            conversationId: randomUUID(),
            hello: [
              JSON.stringify({ method: 'connectionParams', data: {} }),
              JSON.stringify({ id: 1, method: 'subscription', params: { path: 'bench' } }),
            ],
          };
    const replyId = randomUUID();

    // Warm-up: code paths compiled and one-off allocations made before the "before" sample.
    say('warm-up… ');
    const warm = createRound(WARMUP_SUBSCRIBERS, WARMUP_EVENTS);
    rounds.push(warm);
    const warmed = await openRound(url, hello, warm, WARMUP_SUBSCRIBERS, () => {});
    if (warm.sockets.length === 0)
      throw new Error(
        `no warm-up subscription succeeded: ${[...warmed.reasons.keys()].join('; ')}`,
      );
    await sleep(200);
    await control.publish({ conversationId, replyId, count: WARMUP_EVENTS, ratePerSecond: 50 });
    await drain(warm, warm.sockets.length * WARMUP_EVENTS);
    closeRound(warm);
    await settleSockets(control, 0);
    await sleep(300);
    const before = await control.stats(true);

    const rate = rateFor(n);
    const events = eventsFor(n);
    const round = createRound(n, events);
    rounds.push(round);
    const connectStart = now();
    say(`subscribing ${n}:`);
    const { failed, reasons } = await openRound(url, hello, round, n, (done) => {
      if (done % 1000 === 0 || done === n) say(` ${done}`);
    });
    const connectSeconds = (now() - connectStart) / 1000;
    const subscribed = round.sockets.length;
    say(` (${connectSeconds.toFixed(1)} s${failed ? `, ${failed} FAILED` : ''}); idle… `);
    await sleep(IDLE_MS);
    const after = await control.stats(true);

    say(`publishing ${events} @${rate}/s… `);
    const cpuBefore = (await control.stats(false)).cpuMs;
    const elu = performance.eventLoopUtilization();
    const publish = await control.publish({
      conversationId,
      replyId,
      count: events,
      ratePerSecond: rate,
    });
    const expected = subscribed * publish.published;
    await drain(round, expected);
    const loadGenUtilization = performance.eventLoopUtilization(elu).utilization;
    const cpuAfter = (await control.stats(false)).cpuMs;
    closeRound(round);

    const latencies = round.latency.subarray(0, round.delivered).sort();
    const result: SideResult = {
      n,
      events,
      rate,
      subscribed,
      connectFailures: [...reasons].map(([reason, count]) => `${count}× ${reason}`).join('; '),
      connectSeconds,
      expected,
      delivered: round.delivered,
      duplicates: round.duplicates,
      strays: round.strays,
      firstStray: round.firstStray,
      dropped: round.dropped,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: latencies.at(-1) ?? Number.NaN,
      rssKiB: kib(after.rss - before.rss, subscribed),
      heapKiB: kib(after.heapUsed - before.heapUsed, subscribed),
      heapTotalKiB: kib(after.heapTotal - before.heapTotal, subscribed),
      externalKiB: kib(after.external - before.external, subscribed),
      cpuUsPerDelivery: round.delivered > 0 ? ((cpuAfter - cpuBefore) * 1000) / round.delivered : 0,
      publish,
      loadGenUtilization,
      frameBytes: round.frameBytes,
      description: ready.description,
    };
    const missing = expected - round.delivered;
    console.log(
      `p50 ${fmt(result.p50)} p99 ${fmt(result.p99)} max ${fmt(result.max)} ms, ` +
        `${round.delivered}/${expected} delivered${missing > 0 ? ` (${missing} MISSING)` : ''}`,
    );
    return result;
  } catch (err) {
    console.log('failed');
    throw err;
  } finally {
    for (const r of rounds) closeRound(r);
    await stopChild(child);
  }
}

function fmt(v: number, digits?: number): string {
  if (!Number.isFinite(v)) return '—';
  const d = digits ?? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2);
  return v.toFixed(d);
}

function ratio(app: number, base: number): string {
  if (!Number.isFinite(app) || !Number.isFinite(base) || app < 0 || base <= 0) return '—';
  return `${(app / base).toFixed(1)}×`;
}

/** Soft limit on open files for this process (children inherit it), or null off Linux. */
function openFileLimit(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    if (!soft) return null;
    return soft === 'unlimited' ? Number.POSITIVE_INFINITY : Number(soft);
  } catch {
    return null;
  }
}

type SizeResult =
  | { n: number; app: SideResult | Error; baseline: SideResult | Error }
  | { n: number; skipped: string };

function sizeRows(r: SizeResult): string[][] {
  if ('skipped' in r) return [[String(r.n), 'skipped (see below)', '—', '—', '—']];
  const { app, baseline } = r;
  const cell = (s: SideResult | Error, f: (x: SideResult) => string) =>
    s instanceof Error ? 'failed' : f(s);
  const num = (f: (x: SideResult) => number, digits?: number) => [
    cell(app, (x) => fmt(f(x), digits)),
    cell(baseline, (x) => fmt(f(x), digits)),
    app instanceof Error || baseline instanceof Error ? '—' : ratio(f(app), f(baseline)),
  ];
  const count = (x: SideResult) =>
    `${x.delivered}/${x.expected}${x.delivered < x.expected ? ` (${x.expected - x.delivered} missing)` : ''}`;
  const rows: [string, string[]][] = [
    [
      'subscribed (in s)',
      [
        cell(app, (x) => `${x.subscribed}/${x.n} (${x.connectSeconds.toFixed(1)})`),
        cell(baseline, (x) => `${x.subscribed}/${x.n} (${x.connectSeconds.toFixed(1)})`),
        app instanceof Error || baseline instanceof Error
          ? '—'
          : ratio(app.connectSeconds, baseline.connectSeconds),
      ],
    ],
    [
      'events published (rate)',
      [
        cell(app, (x) => `${x.publish.published} (${x.rate}/s)`),
        cell(baseline, (x) => `${x.publish.published} (${x.rate}/s)`),
        '—',
      ],
    ],
    ['latency p50 ms', num((x) => x.p50)],
    ['latency p99 ms', num((x) => x.p99)],
    ['latency max ms', num((x) => x.max)],
    ['delivered/expected', [cell(app, count), cell(baseline, count), '—']],
    ['memory/conn rss KiB', num((x) => x.rssKiB, 1)],
    ['memory/conn heap KiB', num((x) => x.heapKiB, 1)],
    ['memory/conn heap held KiB', num((x) => x.heapTotalKiB, 1)],
    ['memory/conn external KiB', num((x) => x.externalKiB, 1)],
    ['server CPU µs/delivery', num((x) => x.cpuUsPerDelivery, 1)],
  ];
  return rows.map(([metric, cells], i) => [i === 0 ? String(r.n) : '', metric, ...cells]);
}

/** Runs the suite, prints its report; false when the app lost deliveries or failed. */
export async function runFanout(): Promise<boolean> {
  const started = Date.now();
  const loadBefore = loadavg()[0] ?? 0;
  const limit = openFileLimit();
  console.log(
    `\nFan-out: ${SIZES.map((n) => `${n} subscribers × ${eventsFor(n)} events @${rateFor(n)}/s`).join(', ')} ` +
      `(open-file limit ${limit ?? 'unknown'})`,
  );
  const results: SizeResult[] = [];
  for (const n of SIZES) {
    // Each side's sockets, its warm-up's, plus the process's own descriptors and slack.
    const needed = n + WARMUP_SUBSCRIBERS + 200;
    if (limit !== null && needed > limit) {
      const skipped = `needs ~${needed} open files, limit is ${limit} (raise ulimit -n)`;
      console.log(`N = ${n}: ${skipped}`);
      results.push({ n, skipped });
      continue;
    }
    console.log(`N = ${n}`);
    const side = async (name: SideName): Promise<SideResult | Error> => {
      try {
        return await measureSide(name, n);
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        console.log(`  ${SIDES[name].label} FAILED: ${e.message}`);
        return e;
      }
    };
    // Baseline first: whether N sockets fit this machine at all is judged by it.
    const baseline = await side('baseline');
    const app = await side('app');
    results.push({ n, app, baseline });
  }

  // The goals are stated at 5,000 subscribers (or the largest N measured).
  const largest = results
    .filter((r): r is Extract<SizeResult, { app: unknown }> => 'app' in r)
    .filter((r) => !(r.app instanceof Error || r.baseline instanceof Error))
    .at(-1);
  if (largest && !(largest.app instanceof Error) && !(largest.baseline instanceof Error)) {
    recordGoal('fanout.p99', largest.app.p99 / largest.baseline.p99);
    recordGoal('fanout.cpu', largest.app.cpuUsPerDelivery / largest.baseline.cpuUsPerDelivery);
    recordGoal('fanout.memory', largest.app.rssKiB);
  }

  const measuredSides = (side: SideName) =>
    results.flatMap((r) => ('skipped' in r || r[side] instanceof Error ? [] : [r[side]]));
  const apps = measuredSides('app') as SideResult[];
  const bases = measuredSides('baseline') as SideResult[];
  const perN = (f: (x: SideResult) => string) =>
    results
      .filter((r): r is Extract<SizeResult, { app: unknown }> => 'app' in r)
      .map((r) => {
        const cell = (x: SideResult | Error) => (x instanceof Error ? 'failed' : f(x));
        return `N=${r.n} ${cell(r.app)} / ${cell(r.baseline)}`;
      })
      .join('; ');
  const cpu = cpus();
  const skips = results
    .map((r) => ('skipped' in r ? `\n- N = ${r.n} skipped: ${r.skipped}.` : ''))
    .join('');
  const busy =
    loadBefore > cpu.length
      ? `\n- WARNING: load average ${loadBefore.toFixed(2)} on ${cpu.length} CPUs before the start: other work competed for the CPU, so absolute latencies are inflated; read the app / raw ratios, and rerun on a quiet machine for absolute numbers.`
      : '';

  const header = ['N', 'metric', 'app', 'raw ws', 'app / raw'];
  const right = [true, false, true, true, true];
  console.log(`
## SmartSpace WebSocket fan-out bench

node ${process.version} · ${cpu.length} CPU (${cpu[0]?.model.trim() ?? 'unknown'}) · load average before start ${loadBefore.toFixed(2)} · open-file limit ${limit ?? 'unknown'}
app: ${apps[0]?.description ?? 'not measured'}
raw ws: ${bases[0]?.description ?? 'not measured'}
events published at a steady rate on one conversation (${FIXED_RATE === null ? `${DELIVERIES_PER_SECOND.toLocaleString('en-US')} deliveries/s asked of every run, at most ${MAX_RATE} events/s` : `${FIXED_RATE}/s for every N`}, ${SECONDS} s), one frame per (subscriber, event) of ${apps[0]?.frameBytes ?? '?'} bytes (app) / ${bases[0]?.frameBytes ?? '?'} bytes (raw ws); subscribers: plain \`ws\` clients in this process, one user, perMessageDeflate off

${markdownTable(header, right, results.flatMap(sizeRows))}

- latency: receive time in this process minus the event's scheduled publish time (performance.timeOrigin + now(), shared clock), for every (subscriber, event) pair; a server too busy to publish on time is charged the delay. Publish start lag behind schedule, p99 (app / raw ws): ${perN((x) => `${fmt(x.publish.lagP99)} ms`)}.
- app path: bus.publish (transaction: advisory lock, insert, pg_notify) → LISTEN handler reads the row once → each subscription writes the event's frame, serialised once per topic (realtime/socket-stream.ts), to its socket. App publish() p50: ${apps.map((x) => `N=${x.n} ${fmt(x.publish.publishP50)} ms`).join(', ') || '—'}. Raw ws: one JSON.stringify, then ws.send to each socket.
- memory/conn: (after − before) / subscribed, each sampled in the server after gc() twice; before = after a ${WARMUP_SUBSCRIBERS}-socket warm-up was closed, after = all N subscribed and idle ${IDLE_MS / 1000} s. RSS includes kernel-side allocator slack; heap is V8 heapUsed only (socket buffers live outside it); heap held is V8 heapTotal (pages, with fragmentation and free space); external is V8's count of native backing stores (Buffers).
- server CPU: user + system time of the server process over publish and delivery, per delivered frame.
- load generator (this process) event loop busy during publish and delivery (app / raw ws): ${perN((x) => `${Math.round(x.loadGenUtilization * 100)}%`)}; near 100% means the client side, not the server, bounds the latency.
- each side runs in its own child process, one at a time, started fresh for each N; total fan-out run time ${Math.round((Date.now() - started) / 1000)} s${skips}${busy}`);

  let ok = true;
  for (const r of results) {
    if (!('app' in r)) continue;
    const a = r.app;
    if (a instanceof Error) {
      console.error(`FAILED: fan-out N=${r.n}: app side failed: ${a.message}`);
      ok = false;
      continue;
    }
    const b = r.baseline;
    if (a.connectFailures) {
      const machine = b instanceof Error || b.subscribed < b.n;
      console.error(
        `${machine ? 'WARNING' : 'FAILED'}: fan-out N=${r.n}: ${a.n - a.subscribed} app subscriptions failed: ${a.connectFailures}`,
      );
      if (!machine) ok = false;
    }
    if (!(b instanceof Error) && b.connectFailures)
      console.error(`WARNING: fan-out N=${r.n}: raw ws connections failed: ${b.connectFailures}`);
    if (a.delivered < a.expected || a.duplicates > 0 || a.strays > 0 || a.dropped > 0) {
      console.error(
        `FAILED: fan-out N=${r.n}: app delivered ${a.delivered}/${a.expected}` +
          ` (${a.expected - a.delivered} missing, ${a.duplicates} duplicates, ${a.dropped} sockets dropped,` +
          ` ${a.strays} other frames${a.firstStray ? `, first: ${a.firstStray}` : ''})`,
      );
      ok = false;
    }
    if (a.publish.failed > 0) {
      console.error(
        `FAILED: fan-out N=${r.n}: ${a.publish.failed} app publishes failed: ${a.publish.firstError}`,
      );
      ok = false;
    }
  }
  return ok;
}
