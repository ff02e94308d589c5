// Money is decimal USDC text on the wire: sums are done in micro-units, never in floats.

/** Decimal USDC text to micro-units (0 for text that is not an amount). */
export function toMicro(amount: string): bigint {
  const m = /^(-?)(\d+)(?:\.(\d{1,6}))?$/.exec(amount.trim());
  if (!m) return 0n;
  const micro = BigInt(m[2] ?? '0') * 1_000_000n + BigInt((m[3] ?? '').padEnd(6, '0') || '0');
  return m[1] === '-' ? -micro : micro;
}

export function fromMicro(micro: bigint): string {
  const neg = micro < 0n;
  const abs = neg ? -micro : micro;
  const whole = abs / 1_000_000n;
  const frac = (abs % 1_000_000n).toString().padStart(6, '0').replace(/0+$/, '');
  return `${neg ? '-' : ''}${whole}${frac ? `.${frac}` : ''}`;
}

/** An amount for reading: "0.100000" as "0.1", "12.000000" as "12". */
export function usdc(amount: string): string {
  return /^-?\d+(\.\d{1,6})?$/.test(amount.trim()) ? fromMicro(toMicro(amount)) : amount;
}
