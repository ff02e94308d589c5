/**
 * The gateway suite of `pnpm bench`: what api.deps.gateway.stream adds to a model call, and
 * how reservations hold up when many calls contend for one project's rows. The calls and the
 * provider (mock-echo, no pause between chunks) run in one child (gateway-worker.ts) so that
 * its database and heap start fresh; this process prints the report.
 *
 * Per gateway call: the project's policy and limits (cached in process); admission against
 * the project's budget lease in memory (a lease transaction only when a chunk runs out);
 * then the settlement, one statement for the calls that finished meanwhile (lease,
 * budget_usage, balance and ledger entry, the api_requests row). A denial INSERTs a
 * `denied` api_requests row.
 *
 * BENCH_GATEWAY_SECONDS (default 2) per case, BENCH_GATEWAY_IN_FLIGHT (default 50).
 */
import { cpus, loadavg } from 'node:os';
import type { GatewayCase, GatewayReport } from './gateway-measure';
import { record } from './goals';
import { markdownTable } from './report';
import { startChild, stopChild } from './shared';

const number = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const perSecond = (c: GatewayCase) => c.calls / c.seconds;
const microsPerCall = (c: GatewayCase) => (c.seconds * 1e6) / c.calls;
const ms = (x: number) => (x < 1 ? x.toFixed(3) : x.toFixed(2));
const times = (x: number) => `${x < 100 ? x.toFixed(2) : number.format(x)}×`;

function outcome(c: GatewayCase): string {
  const parts = [`${c.ok} ok`];
  if (c.denied) parts.push(`${c.denied} denied`);
  if (c.errors) parts.push(`${c.errors} errors`);
  return parts.join(', ');
}

export function gatewayTable(cases: GatewayCase[]): string {
  const header = [
    'case',
    'in flight',
    'calls',
    'calls/s',
    'µs/call',
    'p50 ms',
    'p99 ms',
    'time × direct',
    '+µs/call',
    'outcome',
  ];
  const right = [false, true, true, true, true, true, true, true, true, false];
  const body = cases.map((c) => {
    const base = cases.find((b) => b.name === c.baseline);
    return [
      `${c.name}${c.path ? ` (${c.path})` : ''}`,
      String(c.inFlight),
      number.format(c.calls),
      number.format(perSecond(c)),
      number.format(microsPerCall(c)),
      ms(c.p50),
      ms(c.p99),
      base ? times(microsPerCall(c) / microsPerCall(base)) : '—',
      base ? number.format(microsPerCall(c) - microsPerCall(base)) : '—',
      outcome(c),
    ];
  });
  return markdownTable(header, right, body);
}

/** Runs the gateway suite and prints its report; false when a call failed or books were off. */
export async function runGateway(): Promise<boolean> {
  const started = Date.now();
  const loadBefore = loadavg()[0] ?? 0;
  console.log('\nGateway: starting the bench child (it runs every case, then reports)…');
  const { child, ready: report } = await startChild<GatewayReport>('./gateway-worker.ts');
  await stopChild(child);
  const { cases } = report;
  const find = (prefix: string) => cases.find((c) => c.name.startsWith(prefix));
  const seqDirect = find('provider direct, sequential');
  const seqFull = find('gateway, limit + prepaid');
  const spread = find('gateway, limit + balance, one project per');
  const hot = find('gateway, limit + balance, ONE');
  const denying = find('gateway, ONE project, budget for');
  const added =
    seqDirect && seqFull ? number.format(microsPerCall(seqFull) - microsPerCall(seqDirect)) : '?';
  const contention = spread && hot ? (perSecond(hot) / perSecond(spread)).toFixed(2) : '?';
  if (seqDirect && seqFull) {
    record('gateway.added', (microsPerCall(seqFull) - microsPerCall(seqDirect)) / 1000);
  }
  // Only a run whose books balanced counts.
  if (hot && hot.errors === 0 && hot.problems.length === 0) record('gateway.hot', perSecond(hot));
  const denials = denying ? number.format(denying.denied / denying.seconds) : '?';
  const cpu = cpus();
  const busy =
    loadBefore > cpu.length
      ? `\n- WARNING: load average ${loadBefore.toFixed(2)} on ${cpu.length} CPUs before the start: other work competed for the CPU, so every latency is inflated; rerun on a quiet machine for absolute numbers.`
      : '';
  console.log(`
## SmartSpace gateway bench

node ${process.version} · ${cpu.length} CPU (${cpu[0]?.model.trim() ?? 'unknown'}) · load average before start ${loadBefore.toFixed(2)}
database: ${report.database}
each case: callers call back to back for ${process.env.BENCH_GATEWAY_SECONDS ?? 2} s per gateway case (direct: at most 1 s) after a shared warm-up; mock-echo without pauses, every call 2 output tokens = 0.002 USDC

${gatewayTable(cases)}

- µs/call: wall time divided by calls (sequentially, the mean latency); time × direct: that divided by the provider's own µs/call at the same number in flight; +µs/call: the difference, what the gateway costs per call. The mock answers in microseconds, so the ratio is large by construction: beside a real model's hundreds of milliseconds, read +µs/call. Sequentially the full path (project limit + prepaid balance) adds ${added} µs per call.
- what the gateway adds to each call: the policy and limits (cached), admission in memory against the project's budget lease (a lease transaction when a chunk of GATEWAY_LEASE_CALLS worst cases runs out), then the settlement: one statement (lease, budget_usage, in prepaid mode the balance and a ledger entry, the api_requests row) for every call that finished while the previous one was written. Metering only (no limit, BILLING_MODE=off) writes just the api_requests row.
- ONE project: every settlement updates the same budget_usage and balance rows, so the ones that finish together go in one statement; ${contention}× the throughput of the same load spread over one project per caller.
- denial path: a budget that affords ${denying?.ok ?? '?'} calls, then ${denials} denials/s (refused against the lease and the rows, then a denied api_requests row), p99 ${denying ? ms(denying.p99) : '?'} ms.
- after each gateway run the leases go back, then the books are checked: budget spend = successful calls × 0.002 USDC, nothing left reserved, balances charged the same.${
    report.database.startsWith('PGlite')
      ? '\n- PGlite runs every query on one connection in this process: the concurrent cases queue on it, so "ONE project" vs "one project per caller" shows little; run with TEST_DATABASE_URL for row-lock contention.'
      : "\n- PostgreSQL: each commit waits for the WAL flush (synchronous_commit), and a hot project's row locks are held until then."
  }
- total gateway run time ${Math.round((Date.now() - started) / 1000)} s${busy}`);

  let ok = true;
  for (const c of cases) {
    if (c.errors > 0) {
      console.error(`FAILED: ${c.name}: ${c.errors} calls failed, first: ${c.firstError}`);
      ok = false;
    }
    if (c.problems.length > 0) {
      console.error(`FAILED: ${c.name}: ${c.problems.join('; ')}`);
      ok = false;
    }
  }
  return ok;
}
