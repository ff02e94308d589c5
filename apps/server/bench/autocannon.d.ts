/** The subset of autocannon 8's programmatic API that the bench uses (no @types for v8). */
declare module 'autocannon' {
  interface Options {
    url: string;
    method?: 'GET' | 'POST';
    headers?: Record<string, string>;
    body?: string;
    connections?: number;
    /** Seconds. */
    duration?: number;
    /** Total requests per second across all connections (fixed-rate load). */
    overallRate?: number;
    /** Seconds before a request counts as a timeout. */
    timeout?: number;
  }

  interface Stats {
    average: number;
    mean: number;
    stddev: number;
    min: number;
    max: number;
    p50: number;
    p90: number;
    p99: number;
  }

  interface Result {
    requests: Stats & { total: number; sent: number };
    /** Milliseconds. */
    latency: Stats;
    throughput: Stats & { total: number };
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    statusCodeStats: Record<string, { count: number }>;
  }

  function autocannon(options: Options): Promise<Result>;
  export default autocannon;
  export type { Options, Result };
}
