/**
 * The compat suite of `pnpm bench`: what SmartSpace adds to a streamed POST /v1/messages.
 * The same upstream (compat-upstream.ts, a Messages-API stand-in answering at once, in its
 * own process) is called directly, and through SmartSpace (compat-server.ts: the real app,
 * its Claude adapter pointed at that upstream by ANTHROPIC_BASE_URL, a project key, a budget
 * limit, usage rows). This process generates the load over raw HTTP with keep-alive, so the
 * client costs the same on both sides.
 *
 * Per call: time to the first text delta (first token) and to the end of the stream.
 * BENCH_COMPAT_SECONDS (default 3) per case, BENCH_COMPAT_IN_FLIGHT (default 50).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { Agent, request } from 'node:http';
import { cpus, loadavg } from 'node:os';
import { COMPAT_MODEL, type CompatBooks, type CompatServerReady } from './compat-protocol';
import type { UpstreamReady } from './compat-upstream';
import { percentile } from './fanout-protocol';
import { record } from './goals';
import { markdownTable } from './report';
import { startChild, stopChild } from './shared';

const SECONDS = Number(process.env.BENCH_COMPAT_SECONDS ?? 3);
const IN_FLIGHT = Number(process.env.BENCH_COMPAT_IN_FLIGHT ?? 50);
const WARMUP_SECONDS = 1;
/** The stated goal for what SmartSpace adds to the first token, p50. */
const GOAL_ADDED_P50_MS = 2;
/** Beyond this, the baseline's two runs disagree enough to call the ratios rough. */
const DRIFT_LIMIT = 0.15;

interface Target {
  origin: string;
  headers: Record<string, string>;
}

interface Timing {
  firstTokenMs: number;
  totalMs: number;
}

interface CompatCase {
  name: string;
  path: string;
  inFlight: number;
  /** The direct case this one is compared with (null for a direct case). */
  baseline: string | null;
  calls: number;
  errors: number;
  firstError: string | null;
  seconds: number;
  ttftP50: number;
  ttftP99: number;
  callP50: number;
  callP99: number;
}

const BODY = JSON.stringify({
  model: COMPAT_MODEL,
  max_tokens: 64,
  stream: true,
  messages: [{ role: 'user', content: 'Say eight words.' }],
});

// One pool for both targets, as a client application would keep.
const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT * 2 });

/** One streamed call; resolves with its timings once the stream has ended with message_stop. */
function streamedCall(target: Target): Promise<Timing> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let firstToken = 0;
    let tail = '';
    const req = request(
      `${target.origin}/v1/messages`,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(BODY),
          'anthropic-version': '2023-06-01',
          ...target.headers,
        },
      },
      (res) => {
        res.setEncoding('utf8');
        let text = '';
        res.on('data', (chunk: string) => {
          if (!firstToken && (tail + chunk).includes('content_block_delta')) {
            firstToken = performance.now();
          }
          tail = chunk.slice(-32);
          if (res.statusCode !== 200 || text.length < 64_000) text += chunk;
        });
        res.on('end', () => {
          if (res.statusCode !== 200) {
            reject(new Error(`${res.statusCode} ${text.slice(0, 200)}`));
          } else if (!firstToken || !text.includes('message_stop')) {
            reject(new Error('the stream ended without a text delta or message_stop'));
          } else {
            resolve({ firstTokenMs: firstToken - t0, totalMs: performance.now() - t0 });
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(BODY);
  });
}

/** `inFlight` callers call back to back until the deadline; every call is timed. */
async function measure(
  c: Pick<CompatCase, 'name' | 'path' | 'inFlight' | 'baseline'>,
  target: Target,
  seconds: number,
): Promise<CompatCase> {
  const ttft: number[] = [];
  const total: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const caller = async () => {
    while (performance.now() < deadline) {
      try {
        const t = await streamedCall(target);
        ttft.push(t.firstTokenMs);
        total.push(t.totalMs);
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: c.inFlight }, caller));
  const elapsed = (performance.now() - started) / 1000;
  ttft.sort((x, y) => x - y);
  total.sort((x, y) => x - y);
  return {
    ...c,
    calls: total.length,
    errors,
    firstError,
    seconds: elapsed,
    ttftP50: percentile(ttft, 50),
    ttftP99: percentile(ttft, 99),
    callP50: percentile(total, 50),
    callP99: percentile(total, 99),
  };
}

const number = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const ms = (x: number) => (Math.abs(x) < 1 ? x.toFixed(3) : x.toFixed(2));
const signed = (x: number) => `${x >= 0 ? '+' : ''}${ms(x)}`;
const perSecond = (c: CompatCase) => c.calls / c.seconds;

export function compatTable(cases: CompatCase[]): string {
  const header = [
    'case',
    'in flight',
    'calls',
    'calls/s',
    'first token p50 ms',
    'p99 ms',
    'call p50 ms',
    'p99 ms',
    'added first token p50 / p99 ms',
    'added call p50 ms',
    'calls/s × direct',
  ];
  const right = [false, true, true, true, true, true, true, true, true, true, true];
  const body = cases.map((c) => {
    const base = cases.find((b) => b.name === c.baseline);
    return [
      `${c.name} (${c.path})`,
      String(c.inFlight),
      number.format(c.calls),
      number.format(perSecond(c)),
      ms(c.ttftP50),
      ms(c.ttftP99),
      ms(c.callP50),
      ms(c.callP99),
      base ? `${signed(c.ttftP50 - base.ttftP50)} / ${signed(c.ttftP99 - base.ttftP99)}` : '—',
      base ? signed(c.callP50 - base.callP50) : '—',
      base ? (perSecond(c) / perSecond(base)).toPrecision(2) : '—',
    ];
  });
  return markdownTable(header, right, body);
}

/** Asks the server child what the gateway recorded. */
function books(child: ChildProcess): Promise<CompatBooks> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error('the server did not answer the books')),
      30_000,
    );
    child.once('message', (m) => {
      clearTimeout(timer);
      resolve(m as CompatBooks);
    });
    child.send({ type: 'books' });
  });
}

async function startUpstream(): Promise<{ child: ChildProcess; origin: string }> {
  // Started directly (not startChild): it needs no database.
  const child = fork(new URL('./compat-upstream.ts', import.meta.url), {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ready = await new Promise<UpstreamReady>((resolve, reject) => {
    child.once('message', (m) => resolve(m as UpstreamReady));
    child.once('exit', (code) => reject(new Error(`compat upstream exited (${code})`)));
  });
  return { child, origin: `http://127.0.0.1:${ready.port}` };
}

/** Runs the compat suite and prints its report; false when a call failed or books were off. */
export async function runCompat(): Promise<boolean> {
  const started = Date.now();
  const loadBefore = loadavg()[0] ?? 0;
  console.log('\nCompat: starting the upstream stand-in and the server (child processes)…');
  const upstream = await startUpstream();
  let server: { child: ChildProcess; ready: CompatServerReady } | undefined;
  try {
    server = await startChild<CompatServerReady>('./compat-server.ts', {
      env: { BENCH_UPSTREAM_URL: upstream.origin },
    });
    const direct: Target = { origin: upstream.origin, headers: { 'x-api-key': 'bench' } };
    const origin = `http://127.0.0.1:${server.ready.port}`;
    const limited: Target = { origin, headers: { 'x-api-key': server.ready.limitedSecret } };
    const metered: Target = { origin, headers: { 'x-api-key': server.ready.meteredSecret } };

    // JIT, connection pools, the database's caches: thrown away, but a failing target stops here.
    const warm = { name: 'warm-up', path: '', inFlight: IN_FLIGHT, baseline: null };
    const warmThrough = await measure(warm, limited, WARMUP_SECONDS);
    const warmDirect = await measure(warm, direct, WARMUP_SECONDS / 2);
    for (const w of [warmThrough, warmDirect]) {
      if (w.errors > 0)
        throw new Error(`warm-up: ${w.errors} calls failed, first: ${w.firstError}`);
    }

    const cases: CompatCase[] = [];
    const run = async (c: Parameters<typeof measure>[0], target: Target) => {
      process.stdout.write(`  ${c.name} (${c.inFlight} in flight) … `);
      const m = await measure(c, target, SECONDS);
      console.log(
        `${number.format(perSecond(m))} calls/s, first token p50 ${ms(m.ttftP50)} ms${m.errors ? `, ${m.errors} errors` : ''}`,
      );
      cases.push(m);
    };
    const seqBase = 'upstream direct, sequential';
    const parBase = 'upstream direct, concurrent';
    const stub = 'raw HTTP → stand-in';
    const viaLimit = 'SmartSpace → Claude adapter → stand-in; budget limit';
    const viaMeter = 'SmartSpace → Claude adapter → stand-in; metering only';
    const seq = { inFlight: 1, baseline: seqBase };
    const par = { inFlight: IN_FLIGHT, baseline: parBase };
    await run({ ...seq, name: seqBase, path: stub, baseline: null }, direct);
    await run({ ...seq, name: 'POST /v1/messages, sequential', path: viaMeter }, metered);
    await run({ ...seq, name: 'POST /v1/messages, sequential', path: viaLimit }, limited);
    await run({ ...par, name: parBase, path: stub, baseline: null }, direct);
    await run({ ...par, name: 'POST /v1/messages, concurrent', path: viaMeter }, metered);
    await run({ ...par, name: 'POST /v1/messages, concurrent', path: viaLimit }, limited);
    await run(
      { ...seq, name: `${seqBase} again (drift check)`, path: stub, baseline: null },
      direct,
    );

    const throughCalls =
      warmThrough.calls + cases.filter((c) => c.baseline).reduce((n, c) => n + c.calls, 0);
    const recorded = await books(server.child);
    report(cases, recorded, server.ready.database, loadBefore, started);
    return verdict(cases, recorded, throughCalls);
  } finally {
    agent.destroy();
    if (server) await stopChild(server.child);
    await stopChild(upstream.child);
  }
}

function report(
  cases: CompatCase[],
  recorded: CompatBooks,
  database: string,
  loadBefore: number,
  started: number,
): void {
  const seqBase = cases.find((c) => c.name === 'upstream direct, sequential');
  const again = cases.find((c) => c.name.includes('drift'));
  const goals = cases
    .filter((c) => c.inFlight === 1 && c.baseline && seqBase)
    .map((c) => {
      const added = c.ttftP50 - (seqBase?.ttftP50 ?? 0);
      const verdict = added <= GOAL_ADDED_P50_MS ? 'met' : 'NOT met';
      return `${c.path.split('; ')[1]}: ${verdict} (${signed(added)} ms)`;
    });
  const addedFirstTokens = cases
    .filter((c) => c.inFlight === 1 && c.baseline && seqBase)
    .map((c) => c.ttftP50 - (seqBase?.ttftP50 ?? 0));
  // The strictest reading: the slowest path through SmartSpace at 1 in flight.
  if (addedFirstTokens.length > 0) record('compat.firstToken', Math.max(...addedFirstTokens));
  const drift = seqBase && again ? perSecond(again) / perSecond(seqBase) - 1 : 0;
  const driftNote =
    Math.abs(drift) > DRIFT_LIMIT
      ? `\n- WARNING: the sequential baseline's calls/s moved ${(drift * 100).toFixed(0)}% between its first and last run; something else competed for the CPU, so treat the added ms as rough and rerun on a quiet machine.`
      : `\n- drift check: the sequential baseline's calls/s moved ${(drift * 100).toFixed(0)}% between its first and last run.`;
  const cpu = cpus();
  const busy =
    loadBefore > cpu.length
      ? `\n- WARNING: load average ${loadBefore.toFixed(2)} on ${cpu.length} CPUs before the start: other work competed for the CPU, so every latency is inflated.`
      : '';
  console.log(`
## SmartSpace compat bench (POST /v1/messages, streamed)

node ${process.version} · ${cpu.length} CPU (${cpu[0]?.model.trim() ?? 'unknown'}) · load average before start ${loadBefore.toFixed(2)}
database: ${database}
each case: callers call back to back for ${SECONDS} s after a shared warm-up; upstream, server and load generator in three processes on this machine; model ${COMPAT_MODEL}

${compatTable(cases)}

- first token: from sending the request to the first \`content_block_delta\` read; call: to the end of the stream (message_stop). added: minus the direct case at the same number in flight, from the same run.
- goal, first token p50 added sequentially ≤ ${GOAL_ADDED_P50_MS} ms: ${goals.join('; ')}.
- what SmartSpace adds per call: key authentication (hash lookup), body validation, the gateway's policy (cached), admission against the project's budget lease in memory, the settlement statement (the api_requests row; with the limit, its usage row and the lease), the Claude adapter's own SDK call to the upstream, and re-encoding its events as Anthropic SSE.
- budget limit, concurrent: every settlement updates the limit's one budget_usage row, so the calls that finish together are settled in one statement; metering only shares no row.\n- books after the run (both projects), once the leases went back: api_requests ${JSON.stringify(recorded.statuses)}, still reserved ${recorded.reserved} micro-USDC.${driftNote}
- total compat run time ${Math.round((Date.now() - started) / 1000)} s${busy}`);
}

function verdict(cases: CompatCase[], recorded: CompatBooks, throughCalls: number): boolean {
  let ok = true;
  for (const c of cases) {
    if (c.errors > 0) {
      console.error(`FAILED: ${c.name}: ${c.errors} calls failed, first: ${c.firstError}`);
      ok = false;
    }
  }
  // Every call through SmartSpace, the warm-up's included, is one succeeded row.
  const succeeded = recorded.statuses.succeeded ?? 0;
  const other = Object.entries(recorded.statuses).filter(([s]) => s !== 'succeeded');
  if (succeeded !== throughCalls || other.length > 0 || recorded.reserved !== '0') {
    console.error(
      `FAILED: books: ${succeeded} succeeded rows for ${throughCalls} measured calls, other ${JSON.stringify(other)}, reserved ${recorded.reserved}`,
    );
    ok = false;
  }
  return ok;
}
