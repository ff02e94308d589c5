import { and, eq, gte, inArray, isNotNull, lte } from 'drizzle-orm';
import { type Address, type Log, parseAbiItem } from 'viem';
import { type ChainClient, canonicalHash } from '../../chain/chain';
import type { Db } from '../../db/client';
import type { Logger } from '../../lib/logger';
import { projectMembers } from '../projects/projects.table';
import { roleAtLeast } from '../projects/roles';
import { depositCursors, type PaymentRow, payments } from './payments.table';
import { type AuditItem, creditIfConfirmed, recordAudits, reversePayment } from './settle';
import { decodeTransfers, type ObservedTransfer, setStatus, upsertTransfer } from './transfers';
import { wallets } from './wallets.table';

/** Payments in this many recent blocks are re-checked against the canonical chain. */
export const REORG_WINDOW = 256;
/** A fresh cursor starts this far back; older deposits can still be claimed by hash. */
export const INITIAL_LOOKBACK = 1_000;
/** Blocks per eth_getLogs call (public RPCs cap the range). */
const LOG_RANGE = 1_000;
const transferEvent = parseAbiItem(
  'event Transfer(address indexed from, address indexed to, uint256 value)',
);

export interface ScanDeps {
  db: Db;
  chain: ChainClient;
  log: Logger;
}

export interface ScanResult {
  head: number;
  /** The first block scanned in this pass (the cursor's next block, or earlier after a reorg). */
  scannedFrom: number;
  /** The last block scanned. */
  scannedTo: number;
  recorded: number;
  credited: number;
  reversed: number;
}

/**
 * One pass of the deposit watcher: undo payments whose block left the chain, record new
 * Transfer logs to the deposit address from the persisted cursor, credit what has matured.
 * Every step is idempotent (unique payment per log, unique ledger reference, status checks
 * under row locks), so a pass may be repeated or race confirmDeposit safely.
 */
export async function scanDeposits(deps: ScanDeps): Promise<ScanResult> {
  const { chain } = deps;
  await chain.ready();
  const head = Number(await chain.rpc((c) => c.getBlockNumber({ cacheTime: 0 })));
  const result: ScanResult = {
    head,
    scannedFrom: head + 1,
    scannedTo: head,
    recorded: 0,
    credited: 0,
    reversed: 0,
  };
  await checkCanonical(deps, head, result);
  await scanLogs(deps, head, result);
  await promote(deps, head, result);
  return result;
}

async function checkCanonical(deps: ScanDeps, head: number, result: ScanResult): Promise<void> {
  const { db, chain } = deps;
  const rows = await db
    .select()
    .from(payments)
    .where(
      and(
        eq(payments.chainId, chain.settings.id),
        inArray(payments.status, ['pending', 'credited', 'unmatched']),
        gte(payments.blockNumber, head - REORG_WINDOW),
        // A lagging RPC node (behind a load balancer) cannot judge blocks it has not seen.
        lte(payments.blockNumber, head),
      ),
    );
  const hashes = new Map<number, string | null>();
  for (const row of rows) {
    if (!hashes.has(row.blockNumber)) {
      hashes.set(row.blockNumber, await canonicalHash(chain, row.blockNumber));
    }
    if (hashes.get(row.blockNumber) === row.blockHash) continue;
    if (await orphan(db, row)) result.reversed++;
  }
}

/** Marks a payment whose block is gone as reversed (undoing its credit); false if it moved on. */
async function orphan(db: Db, stale: PaymentRow): Promise<boolean> {
  return db.transaction(async (tx) => {
    const [row] = await tx.select().from(payments).where(eq(payments.id, stale.id)).for('update');
    if (!row || row.blockHash !== stale.blockHash || row.status === 'reversed') return false;
    if (row.status !== 'credited') {
      await setStatus(tx, row, 'reversed');
      return true;
    }
    const { audit } = await reversePayment(tx, row);
    await recordAudits(tx, [audit]);
    return true;
  });
}

async function scanLogs(deps: ScanDeps, head: number, result: ScanResult): Promise<void> {
  const { db, chain } = deps;
  const { id: chainId, usdcAddress: token, depositAddress } = chain.settings;
  if (!depositAddress) return;
  const key = and(
    eq(depositCursors.chainId, chainId),
    eq(depositCursors.token, token),
    eq(depositCursors.depositAddress, depositAddress),
  );
  const [cursor] = await db.select().from(depositCursors).where(key);
  let from = Math.max(0, head - INITIAL_LOOKBACK);
  if (cursor) {
    if (cursor.blockNumber > head) return; // this RPC node lags behind the last pass
    from = cursor.blockNumber + 1;
    if ((await canonicalHash(chain, cursor.blockNumber)) !== cursor.blockHash) {
      // Blocks we scanned were replaced: scan the recent past again (recording is idempotent).
      from = Math.max(0, cursor.blockNumber - REORG_WINDOW);
      deps.log.warn({ chainId, block: cursor.blockNumber }, 'deposit cursor block reorged');
    }
  }
  result.scannedFrom = from;
  result.scannedTo = from - 1;
  while (from <= head) {
    const to = Math.min(head, from + LOG_RANGE - 1);
    const hash = await canonicalHash(chain, to);
    if (!hash) return;
    const logs: Log[] = await fetchTransferLogs(chain, depositAddress, from, to);
    for (const transfer of decodeTransfers({ chainId, token, logs })) {
      if (transfer.to !== depositAddress) continue;
      if (await recordObserved(deps, transfer, head)) result.credited++;
      result.recorded++;
    }
    // A reorg while reading: the logs may be from the old branch; read again next pass.
    if ((await canonicalHash(chain, to)) !== hash) return;
    await db
      .insert(depositCursors)
      .values({ chainId, token, depositAddress, blockNumber: to, blockHash: hash })
      .onConflictDoUpdate({
        target: [depositCursors.chainId, depositCursors.token, depositCursors.depositAddress],
        set: { blockNumber: to, blockHash: hash, updatedAt: new Date() },
      });
    result.scannedTo = to;
    from = to + 1;
  }
}

function fetchTransferLogs(chain: ChainClient, to: Address, fromBlock: number, toBlock: number) {
  return chain.rpc((c) =>
    c.getLogs({
      address: chain.settings.usdcAddress,
      event: transferEvent,
      args: { to },
      fromBlock: BigInt(fromBlock),
      toBlock: BigInt(toBlock),
    }),
  );
}

/**
 * Records a transfer seen by the scan. A new one from a linked wallet with a deposit project
 * (whose owner is still a member there) goes to that project; anything else stays
 * unmatched until its sender's owner claims it or an admin assigns it. True if credited.
 */
async function recordObserved(
  deps: ScanDeps,
  transfer: ObservedTransfer,
  head: number,
): Promise<boolean> {
  return deps.db.transaction(async (tx) => {
    const recorded = await upsertTransfer(tx, transfer);
    const audits: AuditItem[] = [...recorded.audits];
    let row = recorded.row;
    if (!row.projectId && row.status === 'unmatched') {
      const [wallet] = await tx
        .select({
          id: wallets.id,
          userId: wallets.userId,
          projectId: wallets.projectId,
          role: projectMembers.role,
        })
        .from(wallets)
        .innerJoin(
          projectMembers,
          and(
            eq(projectMembers.projectId, wallets.projectId),
            eq(projectMembers.userId, wallets.userId),
          ),
        )
        .where(and(eq(wallets.address, transfer.from), isNotNull(wallets.projectId)));
      if (wallet?.projectId && roleAtLeast(wallet.role, 'member')) {
        const [claimed] = await tx
          .update(payments)
          .set({
            projectId: wallet.projectId,
            walletId: wallet.id,
            status: 'pending',
            updatedAt: new Date(),
          })
          .where(eq(payments.id, row.id))
          .returning();
        if (claimed) row = claimed;
      }
    }
    const credit = await creditIfConfirmed({
      tx,
      row,
      head,
      confirmations: deps.chain.settings.confirmations,
      actorId: null,
    });
    if (credit.audit) audits.push(credit.audit);
    await recordAudits(tx, audits);
    return credit.audit !== null;
  });
}

/** Credits pending payments that now have enough confirmations (block still canonical). */
async function promote(deps: ScanDeps, head: number, result: ScanResult): Promise<void> {
  const { db, chain } = deps;
  const due = await db
    .select()
    .from(payments)
    .where(
      and(
        eq(payments.chainId, chain.settings.id),
        eq(payments.status, 'pending'),
        isNotNull(payments.projectId),
        lte(payments.blockNumber, head - chain.settings.confirmations + 1),
      ),
    );
  for (const stale of due) {
    if ((await canonicalHash(chain, stale.blockNumber)) !== stale.blockHash) {
      if (await orphan(db, stale)) result.reversed++;
      continue;
    }
    const credited = await db.transaction(async (tx) => {
      const [row] = await tx.select().from(payments).where(eq(payments.id, stale.id)).for('update');
      if (!row || row.blockHash !== stale.blockHash) return false;
      const credit = await creditIfConfirmed({
        tx,
        row,
        head,
        confirmations: chain.settings.confirmations,
        actorId: null,
      });
      if (credit.audit) await recordAudits(tx, [credit.audit]);
      return credit.audit !== null;
    });
    if (credited) result.credited++;
  }
}
