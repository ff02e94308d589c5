import { errorMessage } from '../errors';

/**
 * viem's errors carry a one-line `shortMessage` (e.g. "User rejected the request.") and a
 * long `message` with details and versions: the short one is for the screen.
 */
export function walletErrorMessage(err: unknown): string {
  const short = (err as { shortMessage?: unknown } | null)?.shortMessage;
  if (typeof short === 'string' && short) return short;
  return errorMessage(err);
}
