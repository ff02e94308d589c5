import { and, eq, type SQL, sql } from 'drizzle-orm';
import { type ChainClient, canonicalHash } from '../../chain/chain';
import type { Db } from '../../db/client';
import type { Actor } from '../../lib/actor';
import { AppError } from '../../lib/errors';
import { keyset, type Page, toPage } from '../../lib/pagination';
import { projects } from '../projects/projects.table';
import { type Payment, toPayment } from './payments.dto';
import { payments } from './payments.table';
import { type AuditItem, creditIfConfirmed, recordAudits } from './settle';

export interface PaymentsConfig {
  chainId: number;
  chainName: string;
  usdcAddress: string;
  /** null: deposits are not accepted (DEPOSIT_ADDRESS is not configured). */
  depositAddress: string | null;
  confirmations: number;
}

export function paymentsConfig(chain: ChainClient): PaymentsConfig {
  return {
    chainId: chain.chain.id,
    chainName: chain.chain.name,
    usdcAddress: chain.settings.usdcAddress,
    depositAddress: chain.settings.depositAddress ?? null,
    confirmations: chain.settings.confirmations,
  };
}

/** One page of payments matching `filter`, newest first. */
async function pagePayments(opts: {
  db: Db;
  filter: SQL;
  cursor?: string | undefined;
  limit: number;
}): Promise<Page<Payment>> {
  const page = keyset({
    at: payments.createdAt,
    id: payments.id,
    cursor: opts.cursor,
    direction: 'desc',
  });
  const rows = await opts.db
    .select()
    .from(payments)
    .where(and(opts.filter, page.where))
    .orderBy(...page.orderBy)
    .limit(opts.limit + 1);
  return toPage(rows, opts.limit, (r) => ({ at: r.createdAt, id: r.id }), toPayment);
}

/** A project's payments, newest first. */
export function listPayments(opts: {
  db: Db;
  projectId: string;
  cursor?: string | undefined;
  limit: number;
}): Promise<Page<Payment>> {
  return pagePayments({ ...opts, filter: eq(payments.projectId, opts.projectId) });
}

/** Deposits nobody has claimed, for platform admins to assign; newest first. */
export function listUnmatched(opts: {
  db: Db;
  cursor?: string | undefined;
  limit: number;
}): Promise<Page<Payment>> {
  return pagePayments({ ...opts, filter: eq(payments.status, 'unmatched') });
}

/**
 * A platform admin gives an unmatched deposit (unknown sender, or nobody claimed it) to a
 * project. Credited at once when confirmed, else pending for the watcher. Audited.
 */
export async function assignPayment(opts: {
  db: Db;
  chain: ChainClient;
  paymentId: string;
  projectId: string;
  actor: Actor;
}): Promise<Payment> {
  const [project] = await opts.db
    .select({ id: projects.id })
    .from(projects)
    .where(eq(projects.id, opts.projectId));
  if (!project) throw new AppError('projects.not_found', 'No such project');
  const find = (db: Db) => db.select().from(payments).where(eq(payments.id, opts.paymentId));
  const [seen] = await find(opts.db);
  if (!seen) throw new AppError('payments.not_found', 'No such payment');
  const head = Number(await opts.chain.rpc((c) => c.getBlockNumber({ cacheTime: 0 })));
  const canonical = (await canonicalHash(opts.chain, seen.blockNumber)) === seen.blockHash;
  return opts.db.transaction(async (tx) => {
    const [row] = await find(tx).for('update');
    if (!row) throw new AppError('payments.not_found', 'No such payment');
    if (row.status !== 'unmatched' || row.projectId) {
      throw new AppError('payments.not_assignable', `The payment is ${row.status}, not unmatched`);
    }
    if (!canonical || row.blockHash !== seen.blockHash) {
      throw new AppError('payments.not_assignable', 'Its block is no longer on the chain');
    }
    const [assigned] = await tx
      .update(payments)
      .set({
        projectId: opts.projectId,
        claimedBy: opts.actor.userId,
        status: 'pending',
        updatedAt: sql`now()`,
      })
      .where(eq(payments.id, row.id))
      .returning();
    if (!assigned) throw new Error('payment row vanished');
    const credit = await creditIfConfirmed({
      tx,
      row: assigned,
      head,
      confirmations: opts.chain.settings.confirmations,
      actorId: opts.actor.userId,
    });
    const audits: AuditItem[] = [
      {
        actorId: opts.actor.userId,
        action: 'payments.assigned',
        projectId: opts.projectId,
        target: row.id,
        metadata: { txHash: row.txHash, logIndex: row.logIndex, from: row.fromAddress },
      },
    ];
    if (credit.audit) audits.push(credit.audit);
    await recordAudits(tx, audits, opts.actor.ip);
    return toPayment(credit.row);
  });
}
