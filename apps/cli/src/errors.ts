import { TRPCClientError } from '@smartspace/client';
import { CommanderError } from 'commander';

/** Exit codes: scripts can tell a wrong command line from a failed operation. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** Interrupted by a second Ctrl-C (128 + SIGINT, as shells report it). */
export const EXIT_INTERRUPTED = 130;

/** A command line that cannot work (missing or malformed argument): exit 2. */
export class UsageError extends Error {}

/** A failure already explained to the user in words, with an optional app code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly appCode?: string,
    readonly exitCode = EXIT_FAILURE,
  ) {
    super(message);
  }
}

export interface Described {
  message: string;
  appCode?: string;
  exitCode: number;
  /** Shown only with --debug. */
  stack?: string;
}

function causeCode(err: unknown): string | undefined {
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 6; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

/** fetch's own network failure (no HTTP response at all), whatever the reason. */
function isFetchFailure(err: unknown): boolean {
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 6; depth++) {
    if (cur instanceof TypeError && cur.message === 'fetch failed') return true;
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}

function deepestMessage(err: unknown): string {
  let cur: unknown = err;
  let message = err instanceof Error ? err.message : String(err);
  for (let depth = 0; cur && depth < 6; depth++) {
    if (cur instanceof Error && cur.message) message = cur.message;
    cur = (cur as { cause?: unknown }).cause;
  }
  return message;
}

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNRESET',
  'EHOSTUNREACH',
]);

/** Turns anything thrown into what the user sees: the server's words, never a stack. */
export function describeError(err: unknown, url?: string): Described {
  const stack = err instanceof Error ? err.stack : undefined;
  if (err instanceof CommanderError) return { message: err.message, exitCode: EXIT_USAGE };
  if (err instanceof UsageError) return { message: err.message, exitCode: EXIT_USAGE, stack };
  if (err instanceof CliError) {
    return { message: err.message, appCode: err.appCode, exitCode: err.exitCode, stack };
  }
  const code = causeCode(err);
  if (code && UNREACHABLE.has(code)) {
    const where = url ? ` at ${url}` : '';
    const why = code === 'ECONNREFUSED' ? 'connection refused' : code;
    return {
      message: `Cannot reach the SmartSpace server${where} (${why}). Is it running? Use --url or SMARTSPACE_URL to point elsewhere.`,
      exitCode: EXIT_FAILURE,
      stack,
    };
  }
  if (isFetchFailure(err)) {
    const where = url ? ` at ${url}` : '';
    return {
      message: `Cannot reach the SmartSpace server${where} (${deepestMessage(err)}).`,
      exitCode: EXIT_FAILURE,
      stack,
    };
  }
  if (err instanceof TRPCClientError) {
    const data = err.data as { appCode?: string; fieldErrors?: Record<string, string[]> } | null;
    const fields = Object.entries(data?.fieldErrors ?? {})
      .map(([k, v]) => `${k}: ${v.join(', ')}`)
      .join('; ');
    let message = fields ? `${err.message} (${fields})` : err.message;
    // The saved sign-in is over (a refresh was refused, or the key revoked): say what to do.
    const shape = err.data as { code?: string; path?: string } | null;
    if (shape?.code === 'UNAUTHORIZED' && !shape.path?.startsWith('auth.')) {
      message += ' (run `smartspace login` again)';
    }
    return { message, appCode: data?.appCode, exitCode: EXIT_FAILURE, stack };
  }
  return {
    message: err instanceof Error ? err.message : String(err),
    exitCode: EXIT_FAILURE,
    stack,
  };
}
