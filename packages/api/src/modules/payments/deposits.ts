import { and, eq, inArray, sql } from 'drizzle-orm';
import { type Address, type Hash, TransactionReceiptNotFoundError } from 'viem';
import type { ChainClient } from '../../chain/chain';
import type { Db } from '../../db/client';
import type { Actor } from '../../lib/actor';
import { AppError } from '../../lib/errors';
import { type Payment, toPayment } from './payments.dto';
import { type PaymentRow, payments } from './payments.table';
import { type AuditItem, creditIfConfirmed, recordAudits } from './settle';
import { decodeTransfers, upsertTransfer } from './transfers';
import { wallets } from './wallets.table';

export function requireDepositAddress(chain: ChainClient): Address {
  const address = chain.settings.depositAddress;
  if (!address) {
    throw new AppError(
      'payments.not_configured',
      'Deposits are not accepted: DEPOSIT_ADDRESS is not configured',
    );
  }
  return address;
}

/**
 * Claims the USDC transfers of a transaction for a project: Transfer logs emitted by the
 * configured USDC contract, to the deposit address, from a wallet linked to the caller.
 * Credited at once when the block has the configured confirmations, otherwise `pending`
 * (the watcher credits it later). Unique on (chain, tx hash, log index): a replay, another
 * user or concurrent calls never credit twice. When a transaction holds several such
 * transfers all are claimed; the first (by log index) is returned.
 */
export async function confirmDeposit(opts: {
  db: Db;
  chain: ChainClient;
  projectId: string;
  actor: Actor;
  txHash: Hash;
}): Promise<Payment> {
  const { chain } = opts;
  const depositAddress = requireDepositAddress(chain);
  await chain.ready();
  const receipt = await chain
    .rpc((c) => c.getTransactionReceipt({ hash: opts.txHash }))
    .catch((err: unknown) => {
      if (err instanceof TransactionReceiptNotFoundError) {
        throw new AppError('payments.tx_not_found', 'No mined transaction with this hash');
      }
      throw err;
    });
  if (receipt.status !== 'success') {
    throw new AppError('payments.tx_failed', 'The transaction reverted; it moved no USDC');
  }
  const transfers = decodeTransfers({
    chainId: chain.settings.id,
    token: chain.settings.usdcAddress,
    logs: receipt.logs,
  });
  if (transfers.length === 0) {
    throw new AppError('payments.no_usdc_transfer', 'The transaction has no USDC transfer');
  }
  const deposits = transfers.filter((t) => t.to === depositAddress);
  if (deposits.length === 0) {
    throw new AppError('payments.wrong_recipient', 'The USDC did not go to the deposit address');
  }
  const head = Number(await chain.rpc((c) => c.getBlockNumber({ cacheTime: 0 })));

  return opts.db.transaction(async (tx) => {
    const mine = await tx
      .select({ id: wallets.id, address: wallets.address })
      .from(wallets)
      .where(
        and(
          eq(wallets.userId, opts.actor.userId),
          inArray(
            wallets.address,
            deposits.map((d) => d.from),
          ),
        ),
      );
    const audits: AuditItem[] = [];
    const claimed: PaymentRow[] = [];
    for (const transfer of deposits) {
      const recorded = await upsertTransfer(tx, transfer);
      audits.push(...recorded.audits);
      let row = recorded.row;
      if (row.projectId && row.projectId !== opts.projectId) {
        throw new AppError('payments.already_claimed', 'This deposit was claimed already');
      }
      if (!row.projectId) {
        const wallet = mine.find((w) => w.address === transfer.from);
        // Another sender's transfer in the same transaction: recorded, not ours to claim.
        if (!wallet) continue;
        const [owned] = await tx
          .update(payments)
          .set({
            projectId: opts.projectId,
            walletId: wallet.id,
            claimedBy: opts.actor.userId,
            status: 'pending',
            updatedAt: sql`now()`,
          })
          .where(eq(payments.id, row.id))
          .returning();
        if (!owned) throw new Error('payment row vanished');
        row = owned;
      }
      // Claimed by this project already (a retry): credit it if it has matured since.
      const credit = await creditIfConfirmed({
        tx,
        row,
        head,
        confirmations: chain.settings.confirmations,
        actorId: opts.actor.userId,
      });
      row = credit.row;
      if (credit.audit) audits.push(credit.audit);
      claimed.push(row);
    }
    const first = claimed.sort((a, b) => a.logIndex - b.logIndex)[0];
    if (!first) {
      throw new AppError(
        'payments.wallet_not_linked',
        'The USDC came from a wallet that is not linked to your account',
      );
    }
    await recordAudits(tx, audits, opts.actor.ip);
    return toPayment(first);
  });
}
