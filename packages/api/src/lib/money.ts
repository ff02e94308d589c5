import { z } from 'zod';

/**
 * Money is bigint micro-USDC in code and in the database (1 USDC = 1_000_000), and a
 * decimal string with six fractional digits on the wire ("12.500000"). Never a float.
 */
export const MICRO = 1_000_000n;

export function formatUsdc(micro: bigint): string {
  const sign = micro < 0n ? '-' : '';
  const abs = micro < 0n ? -micro : micro;
  return `${sign}${abs / MICRO}.${(abs % MICRO).toString().padStart(6, '0')}`;
}

const DECIMAL = /^(\d{1,12})(?:\.(\d{1,6}))?$/;

export function parseUsdc(text: string): bigint {
  const m = DECIMAL.exec(text.trim());
  if (!m) throw new Error(`not a USDC amount: ${text}`);
  return BigInt(m[1] ?? '0') * MICRO + BigInt((m[2] ?? '').padEnd(6, '0'));
}

/** A positive amount on the wire: "12.5", "0.000001" (at most 6 decimals, no floats). */
export const usdcAmount = z
  .string()
  .trim()
  .regex(DECIMAL, 'a decimal amount with at most 6 fractional digits, e.g. "12.50"')
  .transform(parseUsdc)
  .refine((v) => v > 0n, 'must be greater than zero');

/**
 * Model prices are USD per million tokens, which is exactly micro-USDC per token. They may
 * have fractions ("0.25"), so prices are kept in millionths of a micro-USDC per token and
 * costs rounded up to whole micro-USDC.
 */
export function priceToPicoPerToken(pricePerMTok: string): bigint {
  const m = /^(\d+)(?:\.(\d{1,6}))?$/.exec(pricePerMTok.trim());
  if (!m) throw new Error(`bad price: ${pricePerMTok}`);
  return BigInt(m[1] ?? '0') * MICRO + BigInt((m[2] ?? '').padEnd(6, '0'));
}

export function costMicro(opts: {
  inputTokens: number;
  outputTokens: number;
  inputPricePerMTok: string;
  outputPricePerMTok: string;
}): bigint {
  const pico =
    BigInt(opts.inputTokens) * priceToPicoPerToken(opts.inputPricePerMTok) +
    BigInt(opts.outputTokens) * priceToPicoPerToken(opts.outputPricePerMTok);
  return (pico + MICRO - 1n) / MICRO;
}
