/**
 * The runs suite of `pnpm bench`: what the agent runner costs per step beside the provider,
 * and how many 3-step runs (model call → calculator tool → model call, mock-echo without
 * pauses) complete per second. The runs execute in one child (runs-worker.ts) over a fresh
 * database; this process prints the report.
 *
 * Overhead per step: runs executed back to back (RUNS_MAX_CONCURRENT_PER_PROJECT=1, a
 * backlog drained by one worker, so each run's time includes claiming it) against the same
 * two provider calls made directly and sequentially: (run time − direct time) / 3 steps.
 *
 * BENCH_RUNS_COUNT (default 200) runs at BENCH_RUNS_CONCURRENCY (default 50) per project;
 * BENCH_RUNS_SEQUENTIAL (default 30) back-to-back runs.
 */
import { cpus, loadavg } from 'node:os';
import { record } from './goals';
import { markdownTable } from './report';
import { startChild, stopChild } from './shared';

export interface RunsCase {
  name: string;
  concurrency: number;
  runs: number;
  /** Wall time for `runs` runs. */
  seconds: number;
  p50: number;
  p99: number;
  /** What p50/p99 time. */
  latency: string;
  failed: number;
  firstError: string | null;
}

export interface RunsReport {
  type: 'report';
  database: string;
  /** Mean time of a run's two provider calls made directly, back to back. */
  directPairMs: number;
  directPairs: number;
  /** The progress events one run published, in order. */
  eventTypes: string[];
  /** Sequential runs: mean ms inside each step (model, tool, model) as run_steps records it. */
  stepMs: number[];
  /** Sequential runs: mean ms a run spends inside the gateway's stream (provider included). */
  gatewayRunMs: number;
  /** Per run: from handing the gateway's settlements over to their landing (overlapped). */
  settleRunMs: number;
  cases: RunsCase[];
}

const STEPS = 3;
const number = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const ms = (x: number) => (x < 1 ? x.toFixed(3) : x < 10 ? x.toFixed(2) : x.toFixed(1));

function casesTable(r: RunsReport): string {
  const header = [
    'case',
    'per project',
    'runs',
    'runs/s',
    'ms/run',
    'p50 ms',
    'p99 ms',
    'latency',
    'failed',
  ];
  const right = [false, true, true, true, true, true, true, false, true];
  const body = [
    [
      'provider direct, the 2 model calls',
      '1',
      number.format(r.directPairs),
      number.format(1000 / r.directPairMs),
      ms(r.directPairMs),
      '—',
      '—',
      'mean',
      '0',
    ],
    ...r.cases.map((c) => [
      c.name,
      String(c.concurrency),
      String(c.runs),
      number.format(c.runs / c.seconds),
      ms((c.seconds * 1000) / c.runs),
      ms(c.p50),
      ms(c.p99),
      c.latency,
      String(c.failed),
    ]),
  ];
  return markdownTable(header, right, body);
}

/** Runs the runs suite and prints its report; false when a run did not succeed as scripted. */
export async function runRuns(): Promise<boolean> {
  const started = Date.now();
  const loadBefore = loadavg()[0] ?? 0;
  console.log('\nRuns: starting the bench child (it runs every case, then reports)…');
  const { child, ready: report } = await startChild<RunsReport>('./runs-worker.ts');
  await stopChild(child);
  const seq = report.cases.find((c) => c.concurrency === 1);
  const runMs = seq ? (seq.seconds * 1000) / seq.runs : Number.NaN;
  const overheadUs = ((runMs - report.directPairMs) * 1000) / STEPS;
  record('runs.overhead', overheadUs / 1000);
  // Split: the gateway's own work (beside the provider) and the runner's (the rest).
  const gatewayUs = ((report.gatewayRunMs - report.directPairMs) * 1000) / STEPS;
  const runnerUs = ((runMs - report.gatewayRunMs) * 1000) / STEPS;
  const counts = new Map<string, number>();
  for (const t of report.eventTypes) counts.set(t, (counts.get(t) ?? 0) + 1);
  const events = [...counts].map(([t, n]) => (n > 1 ? `${n}× ${t}` : t)).join(', ');
  const cpu = cpus();
  const busy =
    loadBefore > cpu.length
      ? `\n- WARNING: load average ${loadBefore.toFixed(2)} on ${cpu.length} CPUs before the start: other work competed for the CPU; rerun on a quiet machine for absolute numbers.`
      : '';
  console.log(`
## SmartSpace runs bench

node ${process.version} · ${cpu.length} CPU (${cpu[0]?.model.trim() ?? 'unknown'}) · load average before start ${loadBefore.toFixed(2)}
database: ${report.database}
workflow: an agent with tools ['calculator'], input \`[[tool:calculator {"expression":"2+2"}]]\` → model step, tool step, model step (${STEPS} steps); mock-echo without pauses; BILLING_MODE=off

${casesTable(report)}

- orchestration overhead per step: ${number.format(overheadUs)} µs ((${ms(runMs)} ms per sequential run − ${ms(report.directPairMs)} ms in the provider) / ${STEPS} steps); a run takes ${(runMs / report.directPairMs).toFixed(0)}× its direct provider time. The mock answers in microseconds, so the ratio is large by construction: beside a real model's hundreds of milliseconds per call, read µs per step.
- of which the gateway (policy and limits from cache, admission against its budget lease, around the provider call; timed around its stream, run by run): ${number.format(gatewayUs)} µs per step (${ms(report.gatewayRunMs)} ms per run, provider included), and the runner (claim with the agent read, events, step rows, transcript, finish, and waiting for the gateway's settlements): ${number.format(runnerUs)} µs per step (${ms(runMs - report.gatewayRunMs)} ms per run). The gateway's settlement statements (usage row, spend; one per model call) are handed to the run and written while it goes on: ${ms(report.settleRunMs)} ms per run from hand-over to landing, overlapping the round's commit; the run waits for them before its next model call (whose admission must see what the last one cost) and before its last write (a finished run's usage is recorded).
- where a sequential run's ${ms(runMs)} ms go: inside the steps (from run_steps) model ${ms(report.stepMs[0] ?? 0)} ms, tool ${ms(report.stepMs[1] ?? 0)} ms, model ${ms(report.stepMs[2] ?? 0)} ms (a model step spans the gateway call and its live events; its usage event and row are stored with its round), the remaining ${ms(runMs - report.stepMs.reduce((a, b) => a + b, 0))} ms between steps: claim (the agent read with it), the round's commit (step rows, deferred events, transcript) and the final one (last step, events, output).
- sequential: one worker drains a backlog (RUNS_MAX_CONCURRENT_PER_PROJECT=1); ms/run is the time between consecutive finishes, so it includes claiming the next run (one statement, a PL/pgSQL function, under the project's advisory lock: count running, pick queued, UPDATE, and read the claimed runs' agents; one round trip, one commit). p50/p99 there: claimed → finished.
- what a run adds around its 2 provider calls: the claim (its agent read in the same round trip), per model step the gateway's own work (policy, admission against its lease, settlement), one statement per round (the run's row with the transcript and the agents' stamp read back, its step rows, its deferred events with their lock and NOTIFYs: all or none, one round trip, no transaction), the same for the run's end (last step, events, output), and ${report.eventTypes.length} progress events (live ones in the background within 20 ms, else with their round): ${events}. A run that writes a chat reply commits its rounds in a transaction instead (the reply's row is written with them).
- concurrent: all runs are started at once (runs.start: an INSERT each, then a claim); latency start → finished includes waiting in the queue behind the ${report.cases.at(-1)?.concurrency ?? '?'} running, so p99 grows with the backlog; runs/s is the number started divided by the time until the last finished.${
    report.database.startsWith('PGlite')
      ? '\n- PGlite runs every query on one connection in this process: concurrent runs queue on it, so concurrency buys little; run with TEST_DATABASE_URL for PostgreSQL.'
      : '\n- PostgreSQL: a pool of 20 connections; each commit waits for the WAL flush (synchronous_commit).'
  }
- total runs bench time ${Math.round((Date.now() - started) / 1000)} s${busy}`);

  let ok = true;
  for (const c of report.cases) {
    if (c.failed > 0) {
      console.error(`FAILED: ${c.name}: ${c.failed} runs did not succeed, first: ${c.firstError}`);
      ok = false;
    }
  }
  return ok;
}
