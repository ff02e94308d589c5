import { randomUUID } from 'node:crypto';
import { and, eq, inArray, or, sql } from 'drizzle-orm';
import type { Db } from '../../db/client';
import type { EventBus } from '../../events/bus';
import { AppError } from '../../lib/errors';
import { formatUsdc } from '../../lib/money';
import { ledgerEntries, projectBalances } from '../billing/billing.table';
import { type BudgetAlert, budgetTopic } from '../budgets/budgets.dto';
import type { Hold } from '../budgets/budgets.service';
import { budgetAlerts, budgetLimits, budgetUsage } from '../budgets/budgets.table';
import { periodStart } from '../budgets/periods';
import { apiRequestHolds, apiRequests } from '../usage/usage.table';

/**
 * The gateway's books in group commits. Every reservation and every settlement is still a
 * transaction that conditionally updates the budget and balance rows, so concurrent calls
 * can never overspend, on one instance or many; but the calls that arrive while one such
 * transaction runs are written together in the next, so a hot project's rows are locked
 * and its WAL flushed once per batch instead of once per call. A batch costs a fixed number
 * of statements whatever its size (independent ones pipelined on the transaction's
 * connection), and rows are locked in one order (budget rows by limit and period, then
 * balances by project) by every batch on every instance, so batches cannot deadlock.
 */

/**
 * Runs `write` on everything queued while the previous run was busy: a call alone is written
 * at once; under load the batches grow by themselves. A failed run fails each of its items.
 */
export function groupCommit<I, O>(
  write: (items: I[]) => Promise<O[]>,
  maxBatch = 256,
): (item: I) => Promise<O> {
  let queue: Array<{ item: I; resolve: (o: O) => void; reject: (e: unknown) => void }> = [];
  let running = false;
  async function drain() {
    running = true;
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(maxBatch);
      try {
        const out = await write(batch.map((b) => b.item));
        for (const [i, b] of batch.entries()) b.resolve(out[i] as O);
      } catch (err) {
        for (const b of batch) b.reject(err);
      }
    }
    running = false;
  }
  return (item) =>
    new Promise<O>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      if (!running) void drain();
    });
}

/** What a reservation records about its call (the api_requests row's identifying columns). */
export interface ReserveItem {
  columns: {
    projectId: string;
    userId: string | null;
    keyId: string | null;
    agentId: string | null;
    runId: string | null;
    conversationId: string | null;
    source: 'chat' | 'run' | 'api';
    model: string;
  };
  /** The worst case, held on every applicable limit and (when `holdBalance`) the balance. */
  worst: bigint;
  holdBalance: boolean;
}

export type ReserveResult =
  | { ok: true; requestId: string; holds: Hold[]; balanceHold: bigint }
  | { ok: false; error: AppError };

type Limit = typeof budgetLimits.$inferSelect;

const rowKey = (limitId: string, start: Date) => `${limitId}|${start.getTime()}`;

/** The limits that apply to a call: the project's, its agent's, member's and key's. */
function applies(limit: Limit, c: ReserveItem['columns']): boolean {
  if (limit.projectId !== c.projectId) return false;
  switch (limit.scope) {
    case 'project':
      return true;
    case 'agent':
      return limit.scopeId === c.agentId;
    case 'member':
      return limit.scopeId === c.userId;
    case 'key':
      return limit.scopeId === c.keyId;
  }
}

/**
 * One transaction for a batch of reservations: the budget and balance rows are upserted and
 * locked in one statement each, every call is admitted in arrival order against what is
 * left (all of its limits and the balance, or none), and the holds and in-progress rows of
 * the admitted calls are written together. A refused call takes nothing.
 */
export async function reserveBatch(db: Db, items: ReserveItem[]): Promise<ReserveResult[]> {
  const now = new Date();
  const projectIds = [...new Set(items.map((i) => i.columns.projectId))];
  const limits = await db
    .select()
    .from(budgetLimits)
    .where(inArray(budgetLimits.projectId, projectIds))
    .orderBy(budgetLimits.id);
  const perItem = items.map((item) =>
    limits
      .filter((l) => applies(l, item.columns))
      .map((limit) => ({ limit, start: periodStart(limit.period, now) })),
  );

  return db.transaction(async (tx) => {
    // Upsert and lock: ON CONFLICT DO UPDATE locks each row and returns its state, in the
    // order given (sorted, the order every batch locks in).
    const usageKeys = new Map<string, { limitId: string; periodStart: Date }>();
    for (const list of perItem) {
      for (const { limit, start } of list) {
        usageKeys.set(rowKey(limit.id, start), { limitId: limit.id, periodStart: start });
      }
    }
    // Both statements go out at once (pipelined on the transaction's connection) and run in
    // the order sent: budget rows first, then balances, the order every batch locks in.
    const sortedUsage = [...usageKeys.values()].sort(byLimitAndPeriod);
    const balanceIds = [
      ...new Set(items.filter((i) => i.holdBalance).map((i) => i.columns.projectId)),
    ].sort();
    const [usageRows, balanceRows] = await Promise.all([
      sortedUsage.length === 0
        ? []
        : tx
            .insert(budgetUsage)
            .values(sortedUsage)
            .onConflictDoUpdate({
              target: [budgetUsage.limitId, budgetUsage.periodStart],
              set: { limitId: sql`excluded.limit_id` },
            })
            .returning({
              limitId: budgetUsage.limitId,
              periodStart: budgetUsage.periodStart,
              spent: budgetUsage.spent,
              reserved: budgetUsage.reserved,
            }),
      balanceIds.length === 0 ? [] : lockBalances(tx, balanceIds),
    ]);
    const usage = new Map<string, { spent: bigint; reserved: bigint }>();
    for (const r of usageRows) usage.set(rowKey(r.limitId, r.periodStart), r);
    const balances = new Map<string, { balance: bigint; reserved: bigint }>();
    for (const r of balanceRows) balances.set(r.projectId, r);

    // Admission, in arrival order, against the running totals.
    const results: ReserveResult[] = items.map((item, i) => {
      for (const { limit, start } of perItem[i] ?? []) {
        const row = usage.get(rowKey(limit.id, start));
        if (!row || row.spent + row.reserved + item.worst > limit.amount) {
          return {
            ok: false,
            error: new AppError(
              'budget.exceeded',
              `The ${limit.scope} budget (${formatUsdc(limit.amount)} per ${limit.period}) does not cover this request`,
              { limitId: limit.id },
            ),
          };
        }
      }
      const balance = item.holdBalance ? balances.get(item.columns.projectId) : undefined;
      if (item.holdBalance && (!balance || balance.balance - balance.reserved < item.worst)) {
        return {
          ok: false,
          error: new AppError(
            'balance.insufficient',
            `The project balance does not cover this request (up to ${formatUsdc(item.worst)} USDC)`,
          ),
        };
      }
      const holds: Hold[] = [];
      for (const { limit, start } of perItem[i] ?? []) {
        const row = usage.get(rowKey(limit.id, start));
        if (row) row.reserved += item.worst;
        holds.push({ limitId: limit.id, periodStart: start, amount: item.worst });
      }
      if (balance) balance.reserved += item.worst;
      return {
        ok: true,
        requestId: randomUUID(),
        holds,
        balanceHold: item.holdBalance ? item.worst : 0n,
      };
    });

    const admitted = results.flatMap((r, i) =>
      r.ok ? [{ r, item: items[i] as ReserveItem }] : [],
    );
    if (admitted.length === 0) return results;
    const touched = new Set(
      admitted.flatMap(({ r }) => r.holds.map((h) => rowKey(h.limitId, h.periodStart))),
    );
    const writes: Promise<unknown>[] = [];
    for (const key of touched) {
      const target = usageKeys.get(key);
      const row = usage.get(key);
      if (!target || !row) continue;
      writes.push(
        tx
          .update(budgetUsage)
          .set({ reserved: row.reserved })
          .where(
            and(
              eq(budgetUsage.limitId, target.limitId),
              eq(budgetUsage.periodStart, target.periodStart),
            ),
          ),
      );
    }
    for (const [projectId, b] of balances) {
      if (!admitted.some(({ item }) => item.holdBalance && item.columns.projectId === projectId)) {
        continue;
      }
      writes.push(
        tx
          .update(projectBalances)
          .set({ reserved: b.reserved })
          .where(eq(projectBalances.projectId, projectId)),
      );
    }
    const heartbeatAt = new Date();
    writes.push(
      tx.insert(apiRequests).values(
        admitted.map(({ r, item }) => ({
          id: r.requestId,
          ...item.columns,
          status: 'in_progress' as const,
          reserved: item.worst,
          balanceHeld: r.balanceHold,
          heartbeatAt,
        })),
      ),
    );
    const holdRows = admitted.flatMap(({ r }) =>
      r.holds.map((h) => ({ requestId: r.requestId, ...h })),
    );
    // Sent after the requests they reference (a foreign key): pipelined statements run in order.
    if (holdRows.length > 0) writes.push(tx.insert(apiRequestHolds).values(holdRows));
    await Promise.all(writes);
    return results;
  });
}

/** Upserts and locks the projects' balance rows (sorted), returning what they hold. */
function lockBalances(tx: Db, projectIds: string[]) {
  return tx
    .insert(projectBalances)
    .values(projectIds.map((projectId) => ({ projectId })))
    .onConflictDoUpdate({
      target: projectBalances.projectId,
      set: { projectId: sql`excluded.project_id` },
    })
    .returning({
      projectId: projectBalances.projectId,
      balance: projectBalances.balance,
      reserved: projectBalances.reserved,
    });
}

function byLimitAndPeriod(
  a: { limitId: string; periodStart: Date },
  b: { limitId: string; periodStart: Date },
): number {
  if (a.limitId !== b.limitId) return a.limitId < b.limitId ? -1 : 1;
  return a.periodStart.getTime() - b.periodStart.getTime();
}

export interface SettleItem {
  requestId: string;
  projectId: string;
  model: string;
  holds: Hold[];
  balanceHold: bigint;
  /** What the balance is charged (the cost in prepaid mode, else 0). */
  charge: bigint;
  cost: bigint;
  status: 'succeeded' | 'failed' | 'cancelled';
  errorCode: string | null;
  inputTokens: number;
  outputTokens: number;
  cacheWriteTokens: number;
  cacheReadTokens: number;
  latencyMs: number;
}

/** Thresholds crossed, per item (each alert is reported once, with the call that crossed it). */
export type SettleResult = Array<{ projectId: string; alert: BudgetAlert }>;

/**
 * One transaction for a batch of settlements: each call's row is finished (once: a sweeper
 * that got there first already released it), its holds released and its cost added to every
 * limit it held, and in prepaid mode the balance charged, capped at what it holds, with one
 * ledger entry per call. Budget thresholds crossed by the batch fire once.
 */
export async function settleBatch(
  db: Db,
  bus: EventBus,
  items: SettleItem[],
): Promise<SettleResult[]> {
  const usageKeys = new Map<string, { limitId: string; periodStart: Date }>();
  for (const s of items) {
    for (const h of s.holds) usageKeys.set(rowKey(h.limitId, h.periodStart), h);
  }
  const sortedUsage = [...usageKeys.values()].sort(byLimitAndPeriod);
  const balanceIds = [
    ...new Set(items.filter((s) => s.balanceHold > 0n || s.charge > 0n).map((s) => s.projectId)),
  ].sort();

  return db.transaction(async (tx) => {
    const finishedAt = new Date();
    // One round trip: the calls' rows finished (each once: a sweeper that got there first
    // already released it), then the budget rows and balances they held locked, in the order
    // every batch locks in (pipelined statements run in the order sent).
    const [finished, locked, balanceRows] = await Promise.all([
      Promise.all(
        items.map((s) =>
          tx
            .update(apiRequests)
            .set({
              status: s.status,
              errorCode: s.errorCode,
              inputTokens: s.inputTokens,
              outputTokens: s.outputTokens,
              cacheWriteTokens: s.cacheWriteTokens,
              cacheReadTokens: s.cacheReadTokens,
              cost: s.cost,
              reserved: 0n,
              latencyMs: s.latencyMs,
              finishedAt,
              heartbeatAt: null,
            })
            .where(and(eq(apiRequests.id, s.requestId), eq(apiRequests.status, 'in_progress')))
            .returning({ id: apiRequests.id }),
        ),
      ),
      sortedUsage.length === 0 ? [] : lockUsage(tx, sortedUsage),
      balanceIds.length === 0 ? [] : lockBalances(tx, balanceIds),
    ]);
    const live = items.filter((_, i) => (finished[i]?.length ?? 0) > 0);
    const results: SettleResult[] = items.map(() => []);
    const writes: Promise<unknown>[] = [];

    // Budget rows: release the holds, add the costs.
    const deltas = new Map<string, { held: bigint; cost: bigint; first: number }>();
    for (const s of live) {
      for (const h of s.holds) {
        const key = rowKey(h.limitId, h.periodStart);
        const d = deltas.get(key) ?? { held: 0n, cost: 0n, first: items.indexOf(s) };
        d.held += h.amount;
        d.cost += s.cost;
        deltas.set(key, d);
      }
    }
    const crossed: Array<{ row: (typeof locked)[number]; after: bigint; first: number }> = [];
    for (const row of locked) {
      const d = deltas.get(rowKey(row.limitId, row.periodStart));
      if (!d) continue;
      const reserved = row.reserved > d.held ? row.reserved - d.held : 0n;
      const after = row.spent + d.cost;
      writes.push(
        tx
          .update(budgetUsage)
          .set({ reserved, spent: after })
          .where(
            and(eq(budgetUsage.limitId, row.limitId), eq(budgetUsage.periodStart, row.periodStart)),
          ),
      );
      if (d.cost > 0n) crossed.push({ row, after, first: d.first });
    }

    // Balances: release each hold, then charge its call, capped at what is available then.
    const entries: Array<typeof ledgerEntries.$inferInsert> = [];
    for (const row of balanceRows) {
      const calls = live.filter((s) => s.projectId === row.projectId);
      if (calls.length === 0) continue;
      let { balance, reserved } = row;
      for (const s of calls) {
        reserved = reserved > s.balanceHold ? reserved - s.balanceHold : 0n;
        if (s.charge <= 0n) continue;
        const available = balance - reserved;
        const charge = s.charge < available ? s.charge : available > 0n ? available : 0n;
        if (charge <= 0n) continue;
        balance -= charge;
        entries.push({
          projectId: row.projectId,
          kind: 'charge',
          amount: -charge,
          balanceAfter: balance,
          reference: `charge:${s.requestId}`,
          metadata: {
            requestId: s.requestId,
            model: s.model,
            cost: formatUsdc(s.charge),
            uncollected: formatUsdc(s.charge - charge),
          },
        });
      }
      writes.push(
        tx
          .update(projectBalances)
          .set({ balance, reserved, updatedAt: finishedAt })
          .where(eq(projectBalances.projectId, row.projectId)),
      );
    }
    if (entries.length > 0) writes.push(tx.insert(ledgerEntries).values(entries));
    await Promise.all(writes);

    // Thresholds crossed by this batch's spend fire once per period (the alert row's key).
    for (const { row, after, first } of crossed) {
      for (const threshold of row.alertAt) {
        const mark = (row.amount * BigInt(Math.round(threshold * 1_000_000))) / 1_000_000n;
        if (row.spent >= mark || after < mark) continue;
        const inserted = await tx
          .insert(budgetAlerts)
          .values({ limitId: row.limitId, periodStart: row.periodStart, threshold, spent: after })
          .onConflictDoNothing()
          .returning({ limitId: budgetAlerts.limitId });
        if (inserted.length === 0) continue;
        const alert = {
          limitId: row.limitId,
          threshold,
          spent: formatUsdc(after),
          amount: formatUsdc(row.amount),
        };
        await bus.publish({
          topic: budgetTopic(row.projectId),
          type: 'budget.alert',
          payload: alert,
          db: tx,
        });
        results[first]?.push({ projectId: row.projectId, alert });
      }
    }
    return results;
  });
}

/** Locks budget rows in the given (sorted) order, with their limits' amounts and alerts. */
function lockUsage(tx: Db, keys: Array<{ limitId: string; periodStart: Date }>) {
  return tx
    .select({
      limitId: budgetUsage.limitId,
      periodStart: budgetUsage.periodStart,
      spent: budgetUsage.spent,
      reserved: budgetUsage.reserved,
      amount: budgetLimits.amount,
      alertAt: budgetLimits.alertAt,
      projectId: budgetLimits.projectId,
    })
    .from(budgetUsage)
    .innerJoin(budgetLimits, eq(budgetLimits.id, budgetUsage.limitId))
    .where(
      or(
        ...keys.map((k) =>
          and(eq(budgetUsage.limitId, k.limitId), eq(budgetUsage.periodStart, k.periodStart)),
        ),
      ),
    )
    .orderBy(budgetUsage.limitId, budgetUsage.periodStart)
    .for('update', { of: budgetUsage });
}
