import { and, eq, sql } from 'drizzle-orm';
import { type Address, erc20Abi, getAddress, type Hash, type Log, parseEventLogs } from 'viem';
import type { Db } from '../../db/client';
import { type PaymentRow, payments } from './payments.table';
import { type AuditItem, reversePayment } from './settle';

/** A USDC Transfer log to the deposit address, as seen on the chain. */
export interface ObservedTransfer {
  chainId: number;
  txHash: Hash;
  logIndex: number;
  blockNumber: number;
  blockHash: Hash;
  token: Address;
  from: Address;
  to: Address;
  /** Token units: 6 decimals, so micro-USDC exactly. */
  amount: bigint;
}

/**
 * Transfer logs emitted by `token` only: a look-alike contract emits the same event
 * signature, so the emitter's address is what makes a log USDC. Zero-value transfers (the
 * address-poisoning kind) are dropped: they move no money.
 */
export function decodeTransfers(opts: {
  chainId: number;
  token: Address;
  logs: Log[];
}): ObservedTransfer[] {
  const fromToken = opts.logs.filter(
    (l) => !l.removed && l.address.toLowerCase() === opts.token.toLowerCase(),
  );
  const out: ObservedTransfer[] = [];
  for (const log of parseEventLogs({ abi: erc20Abi, eventName: 'Transfer', logs: fromToken })) {
    if (log.args.value <= 0n) continue;
    if (log.transactionHash === null || log.logIndex === null) continue;
    if (log.blockNumber === null || log.blockHash === null) continue;
    out.push({
      chainId: opts.chainId,
      txHash: log.transactionHash.toLowerCase() as Hash,
      logIndex: log.logIndex,
      blockNumber: Number(log.blockNumber),
      blockHash: log.blockHash.toLowerCase() as Hash,
      token: getAddress(log.address),
      from: getAddress(log.args.from),
      to: getAddress(log.args.to),
      amount: log.args.value,
    });
  }
  return out;
}

/**
 * Records a transfer (once: unique on chain, tx hash and log index) and returns its row,
 * locked for the rest of the transaction. When the log now sits in another block than
 * recorded, the old block left the chain: a credit on it is reversed first, then the row
 * follows the log to its canonical block.
 */
export async function upsertTransfer(
  tx: Db,
  t: ObservedTransfer,
): Promise<{ row: PaymentRow; audits: AuditItem[] }> {
  await tx
    .insert(payments)
    .values({
      chainId: t.chainId,
      txHash: t.txHash,
      logIndex: t.logIndex,
      blockNumber: t.blockNumber,
      blockHash: t.blockHash,
      token: t.token,
      fromAddress: t.from,
      toAddress: t.to,
      amount: t.amount,
      status: 'unmatched',
    })
    .onConflictDoNothing();
  const [row] = await tx
    .select()
    .from(payments)
    .where(
      and(
        eq(payments.chainId, t.chainId),
        eq(payments.txHash, t.txHash),
        eq(payments.logIndex, t.logIndex),
      ),
    )
    .for('update');
  if (!row) throw new Error('payment row vanished');
  if (row.blockHash === t.blockHash && row.status !== 'reversed') return { row, audits: [] };
  if (row.blockHash === t.blockHash) {
    // Reversed, yet its block is canonical again (the chain switched back).
    return { row: await setStatus(tx, row, row.projectId ? 'pending' : 'unmatched'), audits: [] };
  }
  const audits: AuditItem[] = [];
  let current = row;
  if (current.status === 'credited') {
    const reversed = await reversePayment(tx, current);
    current = reversed.row;
    audits.push(reversed.audit);
  }
  const [moved] = await tx
    .update(payments)
    .set({
      blockNumber: t.blockNumber,
      blockHash: t.blockHash,
      status: current.projectId ? 'pending' : 'unmatched',
      updatedAt: sql`now()`,
    })
    .where(eq(payments.id, current.id))
    .returning();
  if (!moved) throw new Error('payment row vanished');
  return { row: moved, audits };
}

export async function setStatus(
  tx: Db,
  row: PaymentRow,
  status: PaymentRow['status'],
): Promise<PaymentRow> {
  const [updated] = await tx
    .update(payments)
    .set({ status, updatedAt: sql`now()` })
    .where(eq(payments.id, row.id))
    .returning();
  if (!updated) throw new Error('payment row vanished');
  return updated;
}
