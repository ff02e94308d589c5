/** What the gateway bench's child (gateway-worker.ts) measures and reports to gateway.ts. */
import { percentile } from './fanout-protocol';

export interface GatewayCase {
  name: string;
  /** What the call does on top of the provider, for the report. */
  path: string;
  inFlight: number;
  /** The provider-direct case this one is compared with. */
  baseline: string | null;
  calls: number;
  ok: number;
  denied: number;
  errors: number;
  firstError: string | null;
  seconds: number;
  p50: number;
  p99: number;
  /** Books that did not balance after the run (empty when they did). */
  problems: string[];
}

export interface GatewayReport {
  type: 'report';
  database: string;
  cases: GatewayCase[];
}

export type Outcome = 'ok' | 'denied';
/** One call by caller number `worker` (0 .. inFlight - 1). */
export type Call = (worker: number) => Promise<Outcome>;

export type Measurement = Pick<
  GatewayCase,
  'calls' | 'ok' | 'denied' | 'errors' | 'firstError' | 'seconds' | 'p50' | 'p99'
>;

/**
 * `inFlight` callers call back to back until the deadline; every call is timed. The calls
 * under way at the deadline are waited for and counted, so `seconds` runs a little past it.
 */
export async function measure(seconds: number, inFlight: number, call: Call): Promise<Measurement> {
  const latencies: number[] = [];
  let ok = 0;
  let denied = 0;
  let errors = 0;
  let firstError: string | null = null;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const caller = async (worker: number) => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      try {
        if ((await call(worker)) === 'ok') ok++;
        else denied++;
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, (_, w) => caller(w)));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((x, y) => x - y);
  return {
    calls: latencies.length,
    ok,
    denied,
    errors,
    firstError,
    seconds: elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}
