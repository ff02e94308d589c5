import { eq, sql } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { formatUsdc } from '../../lib/money';
import type { Json } from '../audit/audit.hash';
import { recordAudit } from '../audit/audit.service';
import { applyLedgerEntry } from '../billing/billing.service';
import { projectBalances } from '../billing/billing.table';
import { type PaymentRow, payments } from './payments.table';

/** An audit event to append once the transaction's other writes are done. */
export interface AuditItem {
  actorId: string | null;
  action: string;
  projectId: string | null;
  target: string;
  metadata: Record<string, Json>;
}

/** recordAudit holds a global lock until commit: append last, after every other write. */
export async function recordAudits(tx: Db, items: AuditItem[], ip?: string): Promise<void> {
  for (const item of items) await recordAudit({ db: tx, ...item, ip: ip ?? null });
}

/**
 * The ledger reference of a payment's credit. Unique, so a replayed or concurrent credit
 * applies once; a credit undone by a reorg gets a fresh one (`:<reorgs>`) if the deposit is
 * mined again.
 */
export function depositReference(row: PaymentRow): string {
  const base = `deposit:${row.chainId}:${row.txHash}:${row.logIndex}`;
  return row.reorgs === 0 ? base : `${base}:${row.reorgs}`;
}

function describe(row: PaymentRow): Record<string, Json> {
  return {
    paymentId: row.id,
    chainId: row.chainId,
    txHash: row.txHash,
    logIndex: row.logIndex,
    blockNumber: row.blockNumber,
    blockHash: row.blockHash,
    from: row.fromAddress,
    amount: formatUsdc(row.amount),
  };
}

/**
 * Credits a pending payment whose block has enough confirmations; otherwise leaves it.
 * The row must be locked by the caller's transaction.
 */
export async function creditIfConfirmed(opts: {
  tx: Db;
  row: PaymentRow;
  head: number;
  confirmations: number;
  actorId: string | null;
}): Promise<{ row: PaymentRow; audit: AuditItem | null }> {
  const { tx, row } = opts;
  if (row.status !== 'pending' || !row.projectId) return { row, audit: null };
  if (opts.head - row.blockNumber + 1 < opts.confirmations) return { row, audit: null };
  const { entry } = await applyLedgerEntry({
    tx,
    projectId: row.projectId,
    kind: 'deposit',
    amount: row.amount,
    reference: depositReference(row),
    reason: `USDC deposit ${row.txHash}`,
    actorId: opts.actorId,
    metadata: describe(row),
  });
  const [credited] = await tx
    .update(payments)
    .set({ status: 'credited', creditedAt: sql`now()`, updatedAt: sql`now()` })
    .where(eq(payments.id, row.id))
    .returning();
  if (!credited) throw new Error('payment row vanished');
  return {
    row: credited,
    audit: {
      actorId: opts.actorId,
      action: 'payments.deposit_credited',
      projectId: row.projectId,
      target: row.id,
      metadata: { ...describe(row), ledgerEntryId: entry.id, balanceAfter: entry.balanceAfter },
    },
  };
}

/**
 * Undoes a credited payment whose block is no longer canonical: a reversal entry, never a
 * deletion. What was already spent cannot be taken back (the balance never goes below what
 * calls in flight hold): the reversal takes what is there and records the rest as
 * `uncollected`. The row must be locked by the caller's transaction.
 */
export async function reversePayment(
  tx: Db,
  row: PaymentRow,
): Promise<{ row: PaymentRow; audit: AuditItem }> {
  let reversed = 0n;
  let entryId: string | null = null;
  if (row.projectId) {
    const [balance] = await tx
      .select({ balance: projectBalances.balance, reserved: projectBalances.reserved })
      .from(projectBalances)
      .where(eq(projectBalances.projectId, row.projectId))
      .for('update');
    const available = balance ? balance.balance - balance.reserved : 0n;
    reversed = row.amount < available ? row.amount : available > 0n ? available : 0n;
    const { entry } = await applyLedgerEntry({
      tx,
      projectId: row.projectId,
      kind: 'reversal',
      amount: -reversed,
      reference: `reversal:${depositReference(row)}`,
      reason: `Reorg: block ${row.blockHash} is no longer canonical`,
      metadata: { ...describe(row), uncollected: formatUsdc(row.amount - reversed) },
    });
    entryId = entry.id;
  }
  const [updated] = await tx
    .update(payments)
    .set({ status: 'reversed', reorgs: row.reorgs + 1, creditedAt: null, updatedAt: sql`now()` })
    .where(eq(payments.id, row.id))
    .returning();
  if (!updated) throw new Error('payment row vanished');
  return {
    row: updated,
    audit: {
      actorId: null,
      action: 'payments.deposit_reversed',
      projectId: row.projectId,
      target: row.id,
      metadata: {
        ...describe(row),
        reversed: formatUsdc(reversed),
        uncollected: formatUsdc(row.amount - reversed),
        ledgerEntryId: entryId,
      },
    },
  };
}
