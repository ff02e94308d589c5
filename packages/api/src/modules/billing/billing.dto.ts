import { formatUsdc } from '../../lib/money';
import type { ledgerEntries } from './billing.table';

export type LedgerKind = (typeof ledgerEntries.$inferInsert)['kind'];

export interface LedgerEntry {
  id: string;
  projectId: string;
  kind: LedgerKind;
  amount: string;
  balanceAfter: string;
  reference: string;
  reason: string | null;
  createdAt: string;
}

export function toLedgerEntry(r: typeof ledgerEntries.$inferSelect): LedgerEntry {
  return {
    id: r.id,
    projectId: r.projectId,
    kind: r.kind,
    amount: formatUsdc(r.amount),
    balanceAfter: formatUsdc(r.balanceAfter),
    reference: r.reference,
    reason: r.reason,
    createdAt: r.createdAt.toISOString(),
  };
}
