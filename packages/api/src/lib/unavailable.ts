import { AppError } from './errors';

/**
 * Which failures mean "the database (or the network to it) is not serving right now" rather
 * than "this request or our code is wrong". They answer 503
 * service.unavailable with Retry-After, so clients back off and retry instead of reporting a
 * bug; everything else stays a 500.
 */

/** Node socket errors: nobody listening, the connection dropped, the host or name unreachable. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * postgres.js (a connection lost or not opened in time) and db/bounds.ts (no pool connection
 * free in time, no answer in time). Not CONNECTION_ENDED/CONNECTION_DESTROYED: those mean this
 * process closed its own pool, a shutdown or a bug, not an outage.
 */
const DRIVER_CODES = new Set([
  'CONNECTION_CLOSED',
  'CONNECT_TIMEOUT',
  'POOL_TIMEOUT',
  'QUERY_TIMEOUT',
]);

/**
 * PostgreSQL SQLSTATEs: 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now
 * (starting up or recovering), 53300 too_many_connections, 25006 read_only_sql_transaction (a
 * write reached a standby, as during a failover), and 57014 query_canceled: our own
 * statement_timeout (or an operator's cancel) shedding load from a saturated or locked
 * database, which a later retry may pass; a 500 would call it a bug, a 4xx the client's
 * fault. Class 08 is connection exceptions.
 */
const SQL_STATES = new Set(['57P01', '57P02', '57P03', '53300', '25006', '57014']);

function unavailableCode(code: unknown): boolean {
  if (typeof code !== 'string') return false;
  return (
    SOCKET_CODES.has(code) ||
    DRIVER_CODES.has(code) ||
    SQL_STATES.has(code) ||
    /^08[0-9A-Z]{3}$/.test(code)
  );
}

/**
 * Whether `error`, or an error it wraps, is one of the above. drizzle wraps driver errors in
 * DrizzleQueryError (`cause`); Node reports a failed multi-address connect as an
 * AggregateError (`errors`). App errors are never outages: they say what went wrong.
 */
export function isServiceUnavailable(error: unknown): boolean {
  const seen = new Set<unknown>();
  const queue: unknown[] = [error];
  while (queue.length > 0) {
    const e = queue.shift();
    if (!e || typeof e !== 'object' || seen.has(e) || e instanceof AppError) continue;
    seen.add(e);
    const { code, cause, errors } = e as { code?: unknown; cause?: unknown; errors?: unknown };
    if (unavailableCode(code)) return true;
    queue.push(cause);
    if (Array.isArray(errors)) queue.push(...errors);
  }
  return false;
}

/** The app error a client sees; the original stays as `cause`, for the logs only. */
export function serviceUnavailable(cause: unknown): AppError {
  const error = new AppError(
    'service.unavailable',
    'The service is temporarily unavailable; try again shortly',
  );
  error.cause = cause;
  return error;
}

/**
 * Runs `work`, and while it fails because the database is not serving (isServiceUnavailable),
 * runs it again after a growing pause (250 ms doubling to 2 s), for at most `withinMs`. For a
 * background job's last write (a reply's outcome): without it, a short outage would lose what
 * the job produced and leave its row to a sweeper. Any other failure, or the last one when
 * time runs out, is thrown.
 */
export async function retryWhileUnavailable<T>(
  work: () => Promise<T>,
  opts: { withinMs: number; onRetry?: (error: unknown, attempt: number) => void },
): Promise<T> {
  const deadline = Date.now() + opts.withinMs;
  let pause = 250;
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (!isServiceUnavailable(error) || Date.now() + pause > deadline) throw error;
      opts.onRetry?.(error, attempt);
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 2_000);
    }
  }
}
