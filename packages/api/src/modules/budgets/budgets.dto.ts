import { formatUsdc } from '../../lib/money';
import type { BudgetLimitRow, budgetUsage } from './budgets.table';
import type { Period } from './periods';

type BudgetUsageRow = typeof budgetUsage.$inferSelect;

export interface BudgetLimit {
  id: string;
  projectId: string;
  scope: 'project' | 'agent' | 'member' | 'key';
  scopeId: string | null;
  period: Period;
  amount: string;
  alertAt: number[];
  /** Spent in the current period. */
  spent: string;
  /**
   * Held for model calls: by calls in flight, and by the gateway's budget leases (taken
   * ahead in chunks; they go back after GATEWAY_LEASE_IDLE_MS without a call).
   */
  reserved: string;
  periodStart: string;
}

export interface BudgetAlert {
  limitId: string;
  threshold: number;
  spent: string;
  amount: string;
}

export const budgetTopic = (projectId: string) => `budget:${projectId}`;

/** A limit with what was spent and held against it in the period starting at `start`. */
export function toBudgetLimit(
  l: BudgetLimitRow,
  start: Date,
  usage: Pick<BudgetUsageRow, 'spent' | 'reserved'> | undefined,
): BudgetLimit {
  return {
    id: l.id,
    projectId: l.projectId,
    scope: l.scope,
    scopeId: l.scopeId,
    period: l.period,
    amount: formatUsdc(l.amount),
    alertAt: l.alertAt,
    spent: formatUsdc(usage?.spent ?? 0n),
    reserved: formatUsdc(usage?.reserved ?? 0n),
    periodStart: start.toISOString(),
  };
}
