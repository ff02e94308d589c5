import { parseUnits } from 'viem';

/** What `payments.confirmDeposit` accepts: a 0x-prefixed 32-byte hash. */
export const TX_HASH = /^0x[0-9a-fA-F]{64}$/;

/** A positive USDC amount with at most 6 decimals ("12.5"), else null. */
export function usdcUnits(amount: string): bigint | null {
  const text = amount.trim();
  if (!/^\d+(\.\d{1,6})?$/.test(text)) return null;
  const units = parseUnits(text, 6);
  return units > 0n ? units : null;
}

/**
 * An EIP-681 payment request: wallets that scan it prefill a USDC transfer of `units` to the
 * deposit address on the right chain. Without an amount, the plain address (what every
 * wallet understands).
 */
export function depositUri(opts: {
  chainId: number;
  usdc: string;
  depositAddress: string;
  units: bigint | null;
}): string {
  if (opts.units === null) return opts.depositAddress;
  return `ethereum:${opts.usdc}@${opts.chainId}/transfer?address=${opts.depositAddress}&uint256=${opts.units}`;
}

/** Confirmations of a block at `blockNumber` when the chain's head is `head` (its own counts). */
export function confirmationsOf(blockNumber: number, head: number): number {
  return Math.max(0, head - blockNumber + 1);
}

export function shortHex(hex: string): string {
  return hex.length > 14 ? `${hex.slice(0, 8)}…${hex.slice(-6)}` : hex;
}
