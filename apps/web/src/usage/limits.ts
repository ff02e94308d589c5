import type { RouterOutputs } from '@smartspace/client';
import { toMicro } from './money';

export type BudgetLimit = RouterOutputs['budgets']['get']['limits'][number];

/** "project limit per day", "agent limit in total", … */
export function describeLimit(l: Pick<BudgetLimit, 'scope' | 'period'>, name?: string): string {
  const who = name ? `${l.scope} ${name}` : l.scope;
  return `${who} limit ${l.period === 'total' ? 'in total' : `per ${l.period}`}`;
}

/** Share of the limit spent (held amounts included), 0..1 and beyond when overspent. */
export function spentShare(l: Pick<BudgetLimit, 'amount' | 'spent' | 'reserved'>): number {
  const amount = toMicro(l.amount);
  if (amount <= 0n) return 1;
  return Number(((toMicro(l.spent) + toMicro(l.reserved)) * 10_000n) / amount) / 10_000;
}

/**
 * Alert thresholds typed as percentages ("50, 80, 100") as the API takes them (0.5, 0.8, 1);
 * an error names the first entry that is not a percentage in (0, 100].
 */
export function parseThresholds(
  text: string,
): { ok: true; value: number[] } | { ok: false; error: string } {
  const parts = text.split(/[\s,;]+/).filter(Boolean);
  const value: number[] = [];
  for (const p of parts) {
    const n = Number(p.replace(/%$/, ''));
    if (!Number.isFinite(n) || n <= 0 || n > 100) {
      return { ok: false, error: `"${p}" is not a percentage between 0 and 100` };
    }
    value.push(n / 100);
  }
  if (value.length > 10) return { ok: false, error: 'At most 10 alert thresholds' };
  return { ok: true, value: [...new Set(value)].sort((a, b) => a - b) };
}
