import { desc, eq, sql } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { type Actor, auditedBy } from '../../lib/actor';
import { AppError } from '../../lib/errors';
import { formatUsdc } from '../../lib/money';
import { recordAudit } from '../audit/audit.service';
import { projects } from '../projects/projects.table';
import { type LedgerEntry, type LedgerKind, toLedgerEntry } from './billing.dto';
import { ledgerEntries, projectBalances } from './billing.table';

export async function getBalance(
  db: Db,
  projectId: string,
): Promise<{ balance: bigint; reserved: bigint }> {
  const [row] = await db
    .select({ balance: projectBalances.balance, reserved: projectBalances.reserved })
    .from(projectBalances)
    .where(eq(projectBalances.projectId, projectId));
  return row ?? { balance: 0n, reserved: 0n };
}

async function findEntry(db: Db, reference: string): Promise<LedgerEntry | null> {
  const [row] = await db.select().from(ledgerEntries).where(eq(ledgerEntries.reference, reference));
  return row ? toLedgerEntry(row) : null;
}

/** Creates the project's balance row if needed and locks it until the transaction ends. */
async function lockBalance(db: Db, projectId: string) {
  const [row] = await db
    .insert(projectBalances)
    .values({ projectId })
    .onConflictDoUpdate({ target: projectBalances.projectId, set: { updatedAt: new Date() } })
    .returning({ balance: projectBalances.balance, reserved: projectBalances.reserved });
  if (!row) throw new Error('upsert returned no row');
  return row;
}

/**
 * Applies a signed amount to a project's balance and writes its ledger entry, in the
 * caller's transaction. The reference is unique: applying the same operation twice, also
 * concurrently, returns the first entry and changes nothing. The balance row is locked
 * before the check, so money held by calls in flight stays held (and the check constraints
 * are the backstop).
 */
export async function applyLedgerEntry(opts: {
  tx: Db;
  projectId: string;
  kind: LedgerKind;
  amount: bigint;
  reference: string;
  reason?: string | null;
  actorId?: string | null;
  metadata?: Record<string, unknown>;
}): Promise<{ entry: LedgerEntry; applied: boolean }> {
  const { tx } = opts;
  const existing = await findEntry(tx, opts.reference);
  if (existing) return { entry: existing, applied: false };
  const { balance, reserved } = await lockBalance(tx, opts.projectId);
  const balanceAfter = balance + opts.amount;
  if (balanceAfter < reserved) {
    // A twin that committed while we waited for the lock is an answer, not a refusal.
    const twin = await findEntry(tx, opts.reference);
    if (twin) return { entry: twin, applied: false };
    throw new AppError('balance.insufficient', 'The project balance is too low');
  }
  // A concurrent twin holding the reference makes this wait for its commit and then insert
  // nothing. ON CONFLICT, not a caught unique violation: that would abort the caller's
  // transaction and turn a concurrent retry into a 500.
  const [entry] = await tx
    .insert(ledgerEntries)
    .values({
      projectId: opts.projectId,
      kind: opts.kind,
      amount: opts.amount,
      balanceAfter,
      reference: opts.reference,
      reason: opts.reason ?? null,
      actorId: opts.actorId ?? null,
      metadata: opts.metadata ?? {},
    })
    .onConflictDoNothing({ target: ledgerEntries.reference })
    .returning();
  if (!entry) {
    const twin = await findEntry(tx, opts.reference);
    if (!twin) throw new Error('ledger reference taken, yet no entry has it');
    return { entry: twin, applied: false };
  }
  await tx
    .update(projectBalances)
    .set({ balance: balanceAfter, updatedAt: new Date() })
    .where(eq(projectBalances.projectId, opts.projectId));
  return { entry: toLedgerEntry(entry), applied: true };
}

/**
 * Manual credit by a platform admin: a ledger entry like any other. A retry with the same
 * idempotency key applies once and records one audit event.
 */
export async function creditProject(opts: {
  db: Db;
  actor: Actor;
  projectId: string;
  amount: bigint;
  reason: string;
  idempotencyKey?: string | undefined;
}): Promise<LedgerEntry> {
  const [project] = await opts.db
    .select({ id: projects.id })
    .from(projects)
    .where(eq(projects.id, opts.projectId));
  if (!project) throw new AppError('projects.not_found', 'No such project');
  const reference = `credit:${opts.idempotencyKey ?? crypto.randomUUID()}`;
  return opts.db.transaction(async (tx) => {
    const { entry, applied } = await applyLedgerEntry({
      tx,
      projectId: opts.projectId,
      kind: 'credit',
      amount: opts.amount,
      reference,
      reason: opts.reason,
      actorId: opts.actor.userId,
    });
    // Last in the transaction: the audit append holds a global lock until commit.
    if (applied) {
      await recordAudit({
        db: tx,
        ...auditedBy(opts.actor),
        action: 'payments.credited',
        projectId: opts.projectId,
        target: entry.id,
        metadata: { amount: entry.amount, balanceAfter: entry.balanceAfter, reason: opts.reason },
      });
    }
    return entry;
  });
}

/**
 * Ends a hold: releases it and charges `cost` (capped at what the balance holds: a call
 * can cost more than its estimate, but the balance never goes below zero; the shortfall is
 * recorded on the entry).
 */
export async function settleBalanceHold(opts: {
  tx: Db;
  projectId: string;
  held: bigint;
  cost: bigint;
  reference: string;
  metadata: Record<string, unknown>;
}): Promise<void> {
  const { tx } = opts;
  const [row] = await tx
    .update(projectBalances)
    .set({ reserved: sql`greatest(${projectBalances.reserved} - ${opts.held}, 0)` })
    .where(eq(projectBalances.projectId, opts.projectId))
    .returning({ balance: projectBalances.balance, reserved: projectBalances.reserved });
  if (!row || opts.cost <= 0n) return;
  const chargeable = row.balance - row.reserved;
  const charge = opts.cost < chargeable ? opts.cost : chargeable > 0n ? chargeable : 0n;
  if (charge <= 0n) return;
  await applyLedgerEntry({
    tx,
    projectId: opts.projectId,
    kind: 'charge',
    amount: -charge,
    reference: opts.reference,
    metadata: {
      ...opts.metadata,
      cost: formatUsdc(opts.cost),
      uncollected: formatUsdc(opts.cost - charge),
    },
  });
}

export async function listLedger(db: Db, projectId: string, limit: number): Promise<LedgerEntry[]> {
  const rows = await db
    .select()
    .from(ledgerEntries)
    .where(eq(ledgerEntries.projectId, projectId))
    .orderBy(desc(ledgerEntries.createdAt), desc(ledgerEntries.id))
    .limit(limit);
  return rows.map(toLedgerEntry);
}

/** Sum of a project's entries; equals its balance (tests assert it). */
export async function ledgerTotal(db: Db, projectId: string): Promise<bigint> {
  const [row] = await db
    .select({ total: sql<string>`coalesce(sum(${ledgerEntries.amount}), 0)::text` })
    .from(ledgerEntries)
    .where(eq(ledgerEntries.projectId, projectId));
  return BigInt(row?.total ?? '0');
}
