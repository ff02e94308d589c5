import { and, eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../../db/client';
import type { EventBus } from '../../events/bus';
import { type Actor, auditedBy } from '../../lib/actor';
import { formatUsdc } from '../../lib/money';
import { recordAudit } from '../audit/audit.service';
import { type BudgetAlert, type BudgetLimit, budgetTopic, toBudgetLimit } from './budgets.dto';
import { budgetAlerts, budgetLimits, budgetUsage } from './budgets.table';
import { type Period, periodStart } from './periods';

/** NOTIFY payload: the project whose budget limits changed; sent in the changing transaction. */
export const BUDGETS_CHANNEL = 'smartspace_budgets';

/** Tells every instance's gateway (leases.ts) that a project's limits changed. */
export async function notifyBudgetChange(tx: Db, projectId: string): Promise<void> {
  await tx.execute(sql`select pg_notify(${BUDGETS_CHANNEL}, ${projectId})`);
}

export interface Hold {
  limitId: string;
  periodStart: Date;
  amount: bigint;
}

/**
 * Turns holds into spend: releases each hold and adds the actual cost. Thresholds crossed
 * by this spend fire once per period (the alert row's key makes it so), through the event
 * log and to the caller (for the audit log).
 */
export async function settleBudgets(opts: {
  tx: Db;
  bus: EventBus;
  projectId: string;
  holds: Hold[];
  cost: bigint;
}): Promise<BudgetAlert[]> {
  const alerts: BudgetAlert[] = [];
  const ordered = [...opts.holds].sort((a, b) => (a.limitId < b.limitId ? -1 : 1));
  for (const hold of ordered) {
    const [row] = await opts.tx
      .update(budgetUsage)
      .set({
        reserved: sql`greatest(${budgetUsage.reserved} - ${hold.amount}, 0)`,
        spent: sql`${budgetUsage.spent} + ${opts.cost}`,
      })
      .where(
        and(eq(budgetUsage.limitId, hold.limitId), eq(budgetUsage.periodStart, hold.periodStart)),
      )
      .returning({ spent: budgetUsage.spent });
    if (!row || opts.cost <= 0n) continue;
    const [limit] = await opts.tx
      .select()
      .from(budgetLimits)
      .where(eq(budgetLimits.id, hold.limitId));
    if (!limit) continue;
    const before = row.spent - opts.cost;
    for (const threshold of limit.alertAt) {
      const mark = (limit.amount * BigInt(Math.round(threshold * 1_000_000))) / 1_000_000n;
      if (before >= mark || row.spent < mark) continue;
      const inserted = await opts.tx
        .insert(budgetAlerts)
        .values({ limitId: limit.id, periodStart: hold.periodStart, threshold, spent: row.spent })
        .onConflictDoNothing()
        .returning({ limitId: budgetAlerts.limitId });
      if (inserted.length === 0) continue;
      const alert = {
        limitId: limit.id,
        threshold,
        spent: formatUsdc(row.spent),
        amount: formatUsdc(limit.amount),
      };
      await opts.bus.publish({
        topic: budgetTopic(opts.projectId),
        type: 'budget.alert',
        payload: alert,
        db: opts.tx,
      });
      alerts.push(alert);
    }
  }
  return alerts;
}

export async function listLimits(
  db: Db,
  projectId: string,
  now = new Date(),
): Promise<BudgetLimit[]> {
  const limits = await db.select().from(budgetLimits).where(eq(budgetLimits.projectId, projectId));
  if (limits.length === 0) return [];
  const usage = await db
    .select()
    .from(budgetUsage)
    .where(
      inArray(
        budgetUsage.limitId,
        limits.map((l) => l.id),
      ),
    );
  return limits.map((l) => {
    const start = periodStart(l.period, now);
    const u = usage.find((x) => x.limitId === l.id && x.periodStart.getTime() === start.getTime());
    return toBudgetLimit(l, start, u);
  });
}

/** What identifies a limit (project, scope, scope id, period) and what it sets. */
interface LimitSetting {
  projectId: string;
  scope: 'project' | 'agent' | 'member' | 'key';
  scopeId: string | null;
  period: Period;
  amount: bigint;
  alertAt: number[];
}

/**
 * One limit per (scope, scope id, period): setting it again replaces the amount and alerts.
 * An upsert on the unique identity, so concurrent sets leave one row (the last one wins).
 */
export async function setLimit(
  opts: LimitSetting & { db: Db; actor: Actor },
): Promise<BudgetLimit> {
  return opts.db.transaction(async (tx) => {
    const limit = await upsertLimit({ ...opts, db: tx });
    await notifyBudgetChange(tx, opts.projectId);
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'budgets.limit_set',
      projectId: opts.projectId,
      target: limit.id,
      metadata: {
        scope: limit.scope,
        scopeId: limit.scopeId,
        period: limit.period,
        amount: limit.amount,
        alertAt: limit.alertAt,
      },
    });
    return limit;
  });
}

async function upsertLimit(opts: LimitSetting & { db: Db }): Promise<BudgetLimit> {
  const alertAt = [...new Set(opts.alertAt)].sort((a, b) => a - b);
  const [row] = await opts.db
    .insert(budgetLimits)
    .values({
      projectId: opts.projectId,
      scope: opts.scope,
      scopeId: opts.scopeId,
      period: opts.period,
      amount: opts.amount,
      alertAt,
    })
    .onConflictDoUpdate({
      target: [
        budgetLimits.projectId,
        budgetLimits.scope,
        budgetLimits.scopeId,
        budgetLimits.period,
      ],
      set: { amount: opts.amount, alertAt },
    })
    .returning({ id: budgetLimits.id });
  if (!row) throw new Error('upsert returned no row');
  const limit = (await listLimits(opts.db, opts.projectId)).find((l) => l.id === row.id);
  if (!limit) throw new Error('limit vanished');
  return limit;
}

export async function removeLimit(opts: {
  db: Db;
  actor: Actor;
  projectId: string;
  limitId: string;
}): Promise<void> {
  await opts.db.transaction(async (tx) => {
    await tx.delete(budgetLimits).where(eq(budgetLimits.id, opts.limitId));
    await notifyBudgetChange(tx, opts.projectId);
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'budgets.limit_removed',
      projectId: opts.projectId,
      target: opts.limitId,
    });
  });
}
