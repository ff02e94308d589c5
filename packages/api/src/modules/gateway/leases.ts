import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { and, eq, inArray, lt, sql } from 'drizzle-orm';
import { type Db, rowsOf } from '../../db/client';
import type { EventBus } from '../../events/bus';
import { AppError } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import { formatUsdc } from '../../lib/money';
import { settleBalanceHold } from '../billing/billing.service';
import { projectBalances } from '../billing/billing.table';
import { type BudgetAlert, budgetTopic } from '../budgets/budgets.dto';
import { BUDGETS_CHANNEL, settleBudgets } from '../budgets/budgets.service';
import { budgetAlerts, budgetLimits, budgetUsage } from '../budgets/budgets.table';
import { periodStart } from '../budgets/periods';
import {
  type FinishedRequest,
  finishedRequests,
  recordFinished,
  rollUpFrom,
} from '../usage/usage.service';
import { groupCommit } from './books';
import { gatewayLeaseHolds, gatewayLeases } from './leases.table';

/**
 * Budget leases: the gateway's books without a database round trip per call.
 *
 * An instance takes budget (and, in prepaid mode, balance) for a project in advance, in
 * chunks: the chunk is added to the rows' `reserved` in one transaction, so no other
 * instance can spend it, and recorded as a lease (leases.table.ts). Calls are then admitted
 * in memory against what the lease has free: all of their limits and the balance, or a new
 * chunk, or a refusal when the rows cannot cover the shortfall. So concurrent calls can
 * never overspend, on one instance or many. A settled call's cost moves from the lease to
 * `spent` (and off the balance) in a group commit; the rest of its worst case stays leased
 * for the next calls.
 *
 * On one instance a call is refused exactly when the rows' unreserved rest plus what the
 * lease has free cannot cover it. With several instances, one may refuse while another's
 * lease holds the rest: a chunk is at most half of what was left, and an idle lease goes
 * back after `idleMs`.
 *
 * A lease goes back when its project has had no call for `idleMs`, when its budget
 * changes (the budgets NOTIFY), on shutdown, and, should the instance die, by the sweeper
 * once its heartbeat is stale. Every transaction locks in one order (lease, budget rows by
 * limit and period, balances by project), so they cannot deadlock one another.
 */

const LEASE_HEARTBEAT_MS = 5_000;
/**
 * NOTIFY payload `projectId:owner`: a budget or balance of the project is near its end; other
 * instances return their leases of it, so that what is left can be granted call by call.
 */
const PRESSURE_CHANNEL = 'smartspace_budget_pressure';
/** Limits are cached this long at most, should a NOTIFY be lost while LISTEN reconnects. */
const LIMITS_TTL_MS = 5_000;

type Limit = typeof budgetLimits.$inferSelect;

export interface CallColumns {
  projectId: string;
  userId: string | null;
  keyId: string | null;
  agentId: string | null;
  runId: string | null;
  conversationId: string | null;
  source: 'chat' | 'run' | 'api';
  model: string;
}

/** A budget period row a call is held on. */
interface Need {
  key: string;
  limitId: string;
  periodStart: Date;
}

interface LeaseRow {
  limitId: string;
  periodStart: Date;
  /** Taken near the end of the budget: granted call by call, its free part returned at once. */
  tight?: boolean;
  /** Held by the lease in the database (its gateway_lease_holds row). */
  granted: bigint;
  /** The worst cases of this lease's calls in flight. */
  used: bigint;
}

interface Lease {
  id: string;
  projectId: string;
  /** The project's limits when it was taken: a lease outlives no change of them. */
  limits: string;
  rows: Map<string, LeaseRow>;
  balance: { granted: bigint; used: bigint; tight?: boolean };
  /** Calls admitted (or being admitted) and not yet settled. */
  inFlight: number;
  lastUsed: number;
  /** No new calls: it goes back once its calls are settled. */
  retired: boolean;
  /** Its row exists (a grant transaction committed). */
  stored: boolean;
  /** The sweeper returned it while this instance still used it: its calls settle without it. */
  gone: boolean;
  /** Under way once it is being returned. */
  releasing: Promise<void> | null;
  /** When this instance last wrote its heartbeat (sent; Date.now()). */
  renewedAt: number;
}

/** A call admitted on a lease: what its settlement needs. */
export interface Admission {
  requestId: string;
  worst: bigint;
  holdBalance: boolean;
  lease: Lease;
  needs: Need[];
}

export interface Settlement {
  admission: Admission;
  columns: CallColumns;
  startedAt: Date;
  status: 'succeeded' | 'failed' | 'cancelled';
  errorCode: string | null;
  inputTokens: number;
  outputTokens: number;
  cacheWriteTokens: number;
  cacheReadTokens: number;
  cost: bigint;
  /** What the balance is charged (the cost in prepaid mode, else 0). */
  charge: bigint;
  latencyMs: number;
}

export interface LeaseOptions {
  db: Db;
  bus: EventBus;
  log: Logger;
  /** A chunk covers this many worst cases of the call that asks for it. */
  calls: number;
  /** A lease whose project had no call this long goes back. */
  idleMs: number;
  /** The sweeper returns a lease whose heartbeat is older than this. */
  staleMs: number;
  listen?: (channel: string, onPayload: (payload: string) => void) => Promise<() => Promise<void>>;
}

const rowKey = (limitId: string, start: Date) => `${limitId}|${start.getTime()}`;
const min = (a: bigint, b: bigint) => (a < b ? a : b);
const max = (a: bigint, b: bigint) => (a > b ? a : b);

/** The limits that apply to a call: the project's, its agent's, member's and key's. */
function applies(limit: Limit, c: CallColumns): boolean {
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

function exceeded(limit: Pick<Limit, 'id' | 'scope' | 'period' | 'amount'>): AppError {
  return new AppError(
    'budget.exceeded',
    `The ${limit.scope} budget (${formatUsdc(limit.amount)} per ${limit.period}) does not cover this request`,
    { limitId: limit.id },
  );
}

function insufficient(worst: bigint): AppError {
  return new AppError(
    'balance.insufficient',
    `The project balance does not cover this request (up to ${formatUsdc(worst)} USDC)`,
  );
}

/** What the lease has free on a row or the balance. */
const free = (x: { granted: bigint; used: bigint } | undefined) => (x ? x.granted - x.used : 0n);

/** Takes `worst` on every row and the balance when all of them have it free. */
function takeLocal(lease: Lease, needs: Need[], worst: bigint, holdBalance: boolean): boolean {
  // A free call holds nothing.
  if (worst === 0n) return true;
  for (const n of needs) if (free(lease.rows.get(n.key)) < worst) return false;
  if (holdBalance && free(lease.balance) < worst) return false;
  for (const n of needs) {
    const row = lease.rows.get(n.key) as LeaseRow;
    row.used += worst;
  }
  if (holdBalance) lease.balance.used += worst;
  return true;
}

interface GrantRequest {
  lease: Lease;
  needs: Array<Need & { limit: Limit }>;
  worst: bigint;
  holdBalance: boolean;
}

type GrantResult = { ok: true } | { ok: false; error: AppError };

export function createLeases(opts: LeaseOptions) {
  const { db, bus, log } = opts;
  const owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const leases = new Map<string, Lease>();
  /** Every lease with a stored row, current or retired, until it is released. */
  const stored = new Set<Lease>();
  const limitsCache = new Map<string, { limits: Promise<Limit[]>; expires: number }>();
  let closed = false;

  function limitsOf(projectId: string): Promise<Limit[]> {
    const now = Date.now();
    const hit = limitsCache.get(projectId);
    if (hit && hit.expires > now) return hit.limits;
    const limits = db
      .select()
      .from(budgetLimits)
      .where(eq(budgetLimits.projectId, projectId))
      .orderBy(budgetLimits.id)
      // A promise, read once: the query builder itself would run again at every await.
      .execute();
    const entry = { limits, expires: now + LIMITS_TTL_MS };
    limitsCache.set(projectId, entry);
    limits.catch(() => {
      if (limitsCache.get(projectId) === entry) limitsCache.delete(projectId);
    });
    return limits;
  }

  function current(projectId: string, limits: string): Lease {
    let lease = leases.get(projectId);
    if (lease && lease.limits !== limits) {
      retire(lease);
      lease = undefined;
    }
    if (!lease) {
      lease = {
        id: randomUUID(),
        projectId,
        limits,
        rows: new Map(),
        balance: { granted: 0n, used: 0n },
        inFlight: 0,
        lastUsed: Date.now(),
        retired: false,
        stored: false,
        gone: false,
        releasing: null,
        renewedAt: Date.now(),
      };
      leases.set(projectId, lease);
    }
    return lease;
  }

  /** No new calls on it; it goes back once its calls are settled. */
  function retire(lease: Lease): void {
    lease.retired = true;
    if (leases.get(lease.projectId) === lease) leases.delete(lease.projectId);
    if (lease.inFlight === 0) void release(lease);
  }

  /** A call is done with its lease (settled or refused). */
  function done(lease: Lease): void {
    lease.inFlight--;
    lease.lastUsed = Date.now();
    if (lease.retired && lease.inFlight === 0) void release(lease);
  }

  /**
   * Returns what a retired lease holds, once; a failure is logged and the lease left to the
   * sweeper (its heartbeat stops, as it leaves `stored`).
   */
  function release(lease: Lease): Promise<void> {
    if (!lease.stored) return Promise.resolve();
    const releasing =
      lease.releasing ??
      returnLease(db, lease.id, null)
        .then(
          () => undefined,
          (err: unknown) => {
            log.warn({ err, leaseId: lease.id }, 'could not return a budget lease');
          },
        )
        .finally(() => {
          stored.delete(lease);
          lease.stored = false;
        });
    lease.releasing = releasing;
    return releasing;
  }

  // --- Admission -------------------------------------------------------------------------

  /**
   * One transaction for the chunks a batch of calls needs: the leases' rows, then the budget
   * rows and balances (upserted and locked, sorted); each call, in arrival order, is
   * admitted on what its lease has free (a settlement may have freed some since it asked),
   * else granted its shortfall, at least a chunk's worth where the rows have it (at most
   * half of what they have left), else refused. The calls' worst cases are taken from their
   * leases at once, the grants added when the transaction commits.
   */
  async function grantBatch(reqs: GrantRequest[]): Promise<GrantResult[]> {
    const sent = Date.now();
    const usageKeys = new Map<string, { limitId: string; periodStart: Date }>();
    for (const r of reqs) for (const n of r.needs) usageKeys.set(n.key, n);
    const sortedUsage = [...usageKeys.values()].sort(byLimitAndPeriod);
    const balanceIds = [
      ...new Set(reqs.filter((r) => r.holdBalance).map((r) => r.lease.projectId)),
    ].sort();
    const batchLeases = [...new Set(reqs.map((r) => r.lease))].sort((a, b) =>
      a.id < b.id ? -1 : 1,
    );
    // Applied only if the transaction commits.
    const grants = new Map<Lease, { rows: Map<string, bigint>; balance: bigint }>();
    const taken: Array<{ lease: Lease; needs: Need[]; worst: bigint; holdBalance: boolean }> = [];
    let committed = false;
    /** `lease|row key` (or `lease|balance`) granted near the end of the budget in this batch. */
    const tightNow = new Set<string>();
    try {
      const out = await db.transaction(async (tx) => {
        const [leaseRows, usageRows, balanceRows, amounts] = await Promise.all([
          tx
            .insert(gatewayLeases)
            .values(batchLeases.map((l) => ({ id: l.id, projectId: l.projectId, owner })))
            .onConflictDoUpdate({
              target: gatewayLeases.id,
              set: { heartbeatAt: sql`now()` },
            })
            .returning({ id: gatewayLeases.id, inserted: sql<boolean>`(xmax = 0)` }),
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
          // The limits' amounts as they are now (the cache may be a moment behind a change).
          sortedUsage.length === 0
            ? []
            : tx
                .select({ id: budgetLimits.id, amount: budgetLimits.amount })
                .from(budgetLimits)
                .where(
                  inArray(
                    budgetLimits.id,
                    sortedUsage.map((u) => u.limitId),
                  ),
                ),
        ]);
        // A lease this instance had stored but that had to be inserted again was swept (its
        // holds went back): nothing is granted to it any more.
        const inserted = new Set(leaseRows.filter((r) => r.inserted).map((r) => r.id));
        for (const lease of batchLeases) {
          if (!lease.stored || !inserted.has(lease.id)) continue;
          for (const row of lease.rows.values()) {
            row.granted = 0n;
            row.tight = false;
          }
          lease.balance.granted = 0n;
          lease.balance.tight = false;
        }
        const usage = new Map<string, { spent: bigint; reserved: bigint }>();
        for (const r of usageRows) usage.set(rowKey(r.limitId, r.periodStart), r);
        const balances = new Map<string, { balance: bigint; reserved: bigint }>();
        for (const r of balanceRows) balances.set(r.projectId, r);
        const amountOf = new Map(amounts.map((a) => [a.id, a.amount]));

        const results = reqs.map((req): GrantResult => {
          const { lease, worst } = req;
          const g = grants.get(lease) ?? { rows: new Map<string, bigint>(), balance: 0n };
          const freeOn = (key: string) => free(lease.rows.get(key)) + (g.rows.get(key) ?? 0n);
          const wants = new Map<string, bigint>();
          const chunk = worst * BigInt(opts.calls);
          /** Near the end (less than two chunks left): exactly the shortfall, and tight. */
          const size = (shortfall: bigint, left: bigint) =>
            left < 2n * chunk ? shortfall : max(shortfall, min(chunk, left / 2n));
          for (const n of req.needs) {
            const shortfall = worst - freeOn(n.key);
            if (shortfall <= 0n) continue;
            const row = usage.get(n.key);
            const amount = amountOf.get(n.limitId);
            if (!row || amount === undefined) return { ok: false, error: exceeded(n.limit) };
            const left = amount - row.spent - row.reserved;
            if (shortfall > left) return { ok: false, error: exceeded({ ...n.limit, amount }) };
            wants.set(n.key, size(shortfall, left));
            if (left < 2n * chunk) tightNow.add(`${lease.id}|${n.key}`);
          }
          let wantBalance = 0n;
          if (req.holdBalance) {
            const shortfall = worst - (free(lease.balance) + g.balance);
            if (shortfall > 0n) {
              const b = balances.get(lease.projectId);
              const left = b ? b.balance - b.reserved : 0n;
              if (shortfall > left) return { ok: false, error: insufficient(worst) };
              wantBalance = size(shortfall, left);
              if (left < 2n * chunk) tightNow.add(`${lease.id}|balance`);
            }
          }
          // Admitted: the grants are counted against the rows, the call's worst case taken.
          for (const [key, amount] of wants) {
            const row = usage.get(key) as { reserved: bigint };
            row.reserved += amount;
            g.rows.set(key, (g.rows.get(key) ?? 0n) + amount);
          }
          if (wantBalance > 0n) {
            const b = balances.get(lease.projectId) as { reserved: bigint };
            b.reserved += wantBalance;
            g.balance += wantBalance;
          }
          grants.set(lease, g);
          for (const n of req.needs) {
            let row = lease.rows.get(n.key);
            if (!row) {
              row = { limitId: n.limitId, periodStart: n.periodStart, granted: 0n, used: 0n };
              lease.rows.set(n.key, row);
            }
            row.used += worst;
          }
          if (req.holdBalance) lease.balance.used += worst;
          taken.push({ lease, needs: req.needs, worst, holdBalance: req.holdBalance });
          return { ok: true };
        });

        const writes: Promise<unknown>[] = [];
        const rowTotals = new Map<string, bigint>();
        for (const g of grants.values()) {
          for (const [key, amount] of g.rows)
            rowTotals.set(key, (rowTotals.get(key) ?? 0n) + amount);
        }
        for (const u of sortedUsage) {
          const key = rowKey(u.limitId, u.periodStart);
          const add = rowTotals.get(key);
          if (!add) continue;
          writes.push(
            tx
              .update(budgetUsage)
              .set({ reserved: sql`${budgetUsage.reserved} + ${add}` })
              .where(
                and(eq(budgetUsage.limitId, u.limitId), eq(budgetUsage.periodStart, u.periodStart)),
              ),
          );
        }
        for (const projectId of balanceIds) {
          let add = 0n;
          for (const [lease, g] of grants) if (lease.projectId === projectId) add += g.balance;
          if (add === 0n) continue;
          writes.push(
            tx
              .update(projectBalances)
              .set({ reserved: sql`${projectBalances.reserved} + ${add}` })
              .where(eq(projectBalances.projectId, projectId)),
          );
        }
        const holdRows: Array<typeof gatewayLeaseHolds.$inferInsert> = [];
        for (const [lease, g] of grants) {
          if (g.balance > 0n) {
            writes.push(
              tx
                .update(gatewayLeases)
                .set({ balanceHeld: sql`${gatewayLeases.balanceHeld} + ${g.balance}` })
                .where(eq(gatewayLeases.id, lease.id)),
            );
          }
          for (const [key, amount] of g.rows) {
            const u = usageKeys.get(key) as { limitId: string; periodStart: Date };
            holdRows.push({
              leaseId: lease.id,
              limitId: u.limitId,
              periodStart: u.periodStart,
              amount,
            });
          }
        }
        // Other instances holding chunks of a budget now near its end return them (pressure).
        const pressured = new Set<string>();
        for (const lease of batchLeases) {
          const newly = [...tightNow].some((k) => {
            if (!k.startsWith(`${lease.id}|`)) return false;
            const key = k.slice(lease.id.length + 1);
            return key === 'balance' ? !lease.balance.tight : !lease.rows.get(key)?.tight;
          });
          if (newly) pressured.add(lease.projectId);
        }
        for (const projectId of pressured) {
          writes.push(
            tx.execute(sql`select pg_notify(${PRESSURE_CHANNEL}, ${`${projectId}:${owner}`})`),
          );
        }
        if (holdRows.length > 0) {
          writes.push(
            tx
              .insert(gatewayLeaseHolds)
              .values(holdRows)
              .onConflictDoUpdate({
                target: [
                  gatewayLeaseHolds.leaseId,
                  gatewayLeaseHolds.limitId,
                  gatewayLeaseHolds.periodStart,
                ],
                set: { amount: sql`${gatewayLeaseHolds.amount} + excluded.amount` },
              }),
          );
        }
        await Promise.all(writes);
        return results;
      });
      committed = true;
      return out;
    } catch (err) {
      // Nothing was granted: give back what the admitted calls took.
      for (const t of taken) untake(t.lease, t.needs, t.worst, t.holdBalance);
      throw err;
    } finally {
      if (committed) {
        for (const [lease, g] of grants) {
          for (const [key, amount] of g.rows) {
            const row = lease.rows.get(key);
            if (row) row.granted += amount;
          }
          lease.balance.granted += g.balance;
        }
        for (const k of tightNow) {
          const [leaseId, ...rest] = k.split('|');
          const lease = batchLeases.find((l) => l.id === leaseId);
          const key = rest.join('|');
          if (!lease) continue;
          if (key === 'balance') lease.balance.tight = true;
          else {
            const row = lease.rows.get(key);
            if (row) row.tight = true;
          }
        }
        for (const lease of batchLeases) {
          lease.renewedAt = sent;
          if (!lease.stored) {
            lease.stored = true;
            stored.add(lease);
          }
        }
      }
    }
  }

  /** The sweeper returned this lease (its instance was taken for dead): its calls settle without it. */
  function forgetSwept(lease: Lease): void {
    lease.gone = true;
    stored.delete(lease);
    lease.stored = false;
    if (leases.get(lease.projectId) === lease) leases.delete(lease.projectId);
  }

  function untake(lease: Lease, needs: Need[], worst: bigint, holdBalance: boolean) {
    for (const n of needs) {
      const row = lease.rows.get(n.key);
      if (row) row.used -= worst;
    }
    if (holdBalance) lease.balance.used -= worst;
  }

  const grantQueued = groupCommit(grantBatch);

  /**
   * Admits a call whose worst case is `worst` on every limit that applies to it and, when
   * `holdBalance`, on the project's balance: from its lease when the lease has it free,
   * else with a new chunk; refused (an AppError) when the rows cannot cover it.
   */
  async function admit(
    columns: CallColumns,
    worst: bigint,
    holdBalance: boolean,
  ): Promise<Admission> {
    if (closed) throw new AppError('service.unavailable', 'The server is shutting down');
    for (let attempt = 0; ; attempt++) {
      const limits = await limitsOf(columns.projectId);
      const now = new Date();
      const needs = limits
        .filter((l) => applies(l, columns))
        .map((limit) => {
          const start = periodStart(limit.period, now);
          return { key: rowKey(limit.id, start), limitId: limit.id, periodStart: start, limit };
        });
      const lease = current(
        columns.projectId,
        limits.map((l) => `${l.id}:${l.amount}:${l.period}:${l.scope}:${l.scopeId}`).join(),
      );
      lease.inFlight++;
      lease.lastUsed = Date.now();
      const admission = { requestId: randomUUID(), worst, holdBalance, lease, needs };
      // In memory only while the lease is surely still there: renewed within half the bound
      // after which the sweeper may take it for dead. Else the grant transaction looks.
      const fresh = Date.now() - lease.renewedAt < opts.staleMs / 2;
      if (fresh && takeLocal(lease, needs, worst, holdBalance)) return admission;
      try {
        const result = await grantQueued({ lease, needs, worst, holdBalance });
        if (result.ok) return admission;
        done(lease);
        throw result.error;
      } catch (err) {
        if (err instanceof AppError) throw err;
        done(lease);
        // A limit removed since it was cached: read them again, once.
        if ((err as { code?: string }).code === '23503' && attempt === 0) {
          limitsCache.delete(columns.projectId);
          continue;
        }
        throw err;
      }
    }
  }

  // --- Settlement ------------------------------------------------------------------------

  class LeaseGone extends Error {
    constructor(readonly ids: Set<string>) {
      super('lease gone');
    }
  }

  /**
   * One transaction for a batch of settlements: each call's cost moves from its lease to the
   * budget rows' `spent` (what it consumed of the lease: its cost, out of its own worst case
   * and what the lease has free) and, in prepaid mode, off the balance with a ledger entry;
   * its usage row is written finished. Budget thresholds crossed fire once. Statements go out
   * together (pipelined) in the locking order. Should a lease have been swept meanwhile (the
   * instance was taken for dead), its calls are settled without it: spend recorded, the
   * balance charged what it has free.
   */
  async function settleBatch(
    items: Settlement[],
  ): Promise<Array<Array<{ projectId: string; alert: BudgetAlert }>>> {
    const out = new Map<Settlement, Array<{ projectId: string; alert: BudgetAlert }>>();
    // Calls whose lease was swept (the instance was taken for dead) settle without it.
    const live = items.filter((s) => !s.admission.lease.gone);
    // What each call consumes of its lease: its cost, out of its own worst case and what the
    // lease has free, counting what earlier calls of this batch take. Taken from the lease,
    // and the call's worst case given back, when the batch commits.
    const pending = new Map<object, bigint>();
    /**
     * What a call takes (its cost, capped) and what leaves the lease: the take, and on a tight
     * row also what the lease has free beyond the other calls in flight (returned at once).
     */
    const consume = (
      x: { granted: bigint; used: bigint; tight?: boolean },
      cost: bigint,
      worst: bigint,
    ) => {
      const granted = x.granted - (pending.get(x) ?? 0n);
      const take = min(min(cost, worst + max(granted - x.used, 0n)), granted);
      const rest = x.tight ? max(granted - take - (x.used - worst), 0n) : 0n;
      pending.set(x, (pending.get(x) ?? 0n) + take + rest);
      return { take, release: take + rest };
    };
    const plans = live.map((s) => {
      const { lease, needs, worst, holdBalance } = s.admission;
      const takes = needs.map((n) => {
        const row = lease.rows.get(n.key);
        return row ? consume(row, s.cost, worst).release : 0n;
      });
      const b = holdBalance ? consume(lease.balance, s.charge, worst) : { take: 0n, release: 0n };
      return { s, takes, charge: b.take, balanceRelease: b.release };
    });
    try {
      if (plans.length > 0) {
        const res = await writeSettlements(plans);
        for (const [i, { s, takes, balanceRelease }] of plans.entries()) {
          const { lease, needs, worst, holdBalance } = s.admission;
          for (const [j, n] of needs.entries()) {
            const row = lease.rows.get(n.key);
            if (row) row.granted -= takes[j] ?? 0n;
          }
          lease.balance.granted -= balanceRelease;
          untake(lease, needs, worst, holdBalance);
          out.set(s, res[i] ?? []);
        }
      }
    } catch (err) {
      if (!(err instanceof LeaseGone)) {
        for (const { s } of plans) {
          const { lease, needs, worst, holdBalance } = s.admission;
          untake(lease, needs, worst, holdBalance);
        }
        throw err;
      }
      // Swept leases: gone here too; this batch again, their calls without them.
      for (const { s } of plans) {
        if (err.ids.has(s.admission.lease.id)) forgetSwept(s.admission.lease);
      }
      return settleBatch(items);
    }
    for (const s of items) {
      if (!s.admission.lease.gone) continue;
      out.set(s, await settleWithoutLease(s));
    }
    return items.map((s) => out.get(s) ?? []);
  }

  /**
   * Writes a batch of settlements. Normally one statement (its parts ordered lease, budget
   * rows, lease holds and balances, as every transaction here locks), so a settlement costs
   * one round trip and one commit. A lease this instance has not renewed for half the stale
   * bound might have been swept: then its row is locked first, in a transaction, and a
   * missing one throws LeaseGone before anything is written.
   */
  async function writeSettlements(
    plans: SettlePlan[],
  ): Promise<Array<Array<{ projectId: string; alert: BudgetAlert }>>> {
    const statement = settleStatement(plans);
    const leaseList = [
      ...new Set(plans.map((p) => p.s.admission.lease).filter((l) => l.stored)),
    ].sort((a, b) => (a.id < b.id ? -1 : 1));
    const sent = Date.now();
    const suspect = leaseList.some((l) => sent - l.renewedAt >= opts.staleMs / 2);
    const run = async (executor: Db) => {
      const [row] = rowsOf<SettleRow>(await executor.execute(statement.query));
      return row;
    };
    const checked = () =>
      db.transaction(async (tx) => {
        const found = await tx
          .select({ id: gatewayLeases.id })
          .from(gatewayLeases)
          .where(
            inArray(
              gatewayLeases.id,
              leaseList.map((l) => l.id),
            ),
          )
          .orderBy(gatewayLeases.id)
          .for('update');
        const present = new Set(found.map((f) => f.id));
        const gone = new Set(leaseList.filter((l) => !present.has(l.id)).map((l) => l.id));
        if (gone.size > 0) throw new LeaseGone(gone);
        return run(tx);
      });
    let row: SettleRow | undefined;
    if (suspect) row = await checked();
    else {
      try {
        row = await run(db);
      } catch (err) {
        // A lease swept meanwhile makes a charge exceed what the balance has free (its check
        // constraint): settled then through the checked path.
        if ((err as { code?: string }).code !== '23514') throw err;
        row = await checked();
      }
    }
    if (!row) throw new Error('settlement returned no row');
    const found = new Set(row.leases);
    for (const lease of leaseList) {
      if (found.has(lease.id)) lease.renewedAt = sent;
      else forgetSwept(lease);
    }
    return alertsFor(plans.length, statement.rows, row.usage);
  }

  /**
   * Thresholds crossed by a batch's spend fire once per period (the alert row's key), in a
   * transaction of their own after the settlement (rare: only when one was crossed).
   */
  async function alertsFor(
    count: number,
    rows: Map<string, { spent: bigint; first: number }>,
    usage: SettleRow['usage'],
  ): Promise<Array<Array<{ projectId: string; alert: BudgetAlert }>>> {
    const results: Array<Array<{ projectId: string; alert: BudgetAlert }>> = Array.from(
      { length: count },
      () => [],
    );
    const crossed: Crossing[] = [];
    for (const u of usage) {
      const periodStart = new Date(u.periodStart);
      const r = rows.get(rowKey(u.limitId, periodStart));
      if (!r || r.spent <= 0n) continue;
      const after = BigInt(u.spent);
      const amount = BigInt(u.amount);
      const before = after - r.spent;
      for (const threshold of u.alertAt) {
        const mark = (amount * BigInt(Math.round(threshold * 1_000_000))) / 1_000_000n;
        if (before >= mark || after < mark) continue;
        crossed.push({
          limitId: u.limitId,
          periodStart,
          threshold,
          spent: after,
          amount,
          projectId: u.projectId,
          first: r.first,
        });
      }
    }
    for (const fired of await fireAlerts(db, bus, crossed)) {
      results[fired.first]?.push({ projectId: fired.projectId, alert: fired.alert });
    }
    return results;
  }

  /** A call whose lease was swept: its spend recorded, the balance charged what it has free. */
  async function settleWithoutLease(
    s: Settlement,
  ): Promise<Array<{ projectId: string; alert: BudgetAlert }>> {
    const projectId = s.columns.projectId;
    return db.transaction(async (tx) => {
      const alerts = await settleBudgets({
        tx,
        bus,
        projectId,
        holds: s.admission.needs.map((n) => ({ ...n, amount: 0n })),
        cost: s.cost,
      });
      if (s.charge > 0n) {
        await settleBalanceHold({
          tx,
          projectId,
          held: 0n,
          cost: s.charge,
          reference: `charge:${s.admission.requestId}`,
          metadata: { requestId: s.admission.requestId, model: s.columns.model },
        });
      }
      await recordFinished(tx, [finishedRow(s)]);
      return alerts.map((alert) => ({ projectId, alert }));
    });
  }

  const settleQueued = groupCommit(settleBatch);

  /** Settles an admitted call; resolves to the budget alerts its spend fired. */
  async function settle(s: Settlement): Promise<Array<{ projectId: string; alert: BudgetAlert }>> {
    try {
      return await settleQueued(s);
    } finally {
      done(s.admission.lease);
    }
  }

  // --- Upkeep ----------------------------------------------------------------------------

  const heartbeat = setInterval(() => {
    const list = [...stored].sort((a, b) => (a.id < b.id ? -1 : 1));
    if (list.length === 0) return;
    const sent = Date.now();
    // Locked in id order, as every transaction locks leases.
    void db
      .execute(
        sql`update ${gatewayLeases} set heartbeat_at = now() where id in (
          select id from ${gatewayLeases} where id in ${list.map((l) => l.id)}
          order by id for update)`,
      )
      .then(() => {
        for (const lease of list) lease.renewedAt = sent;
      })
      .catch((err: unknown) => log.warn({ err }, 'could not renew budget leases'));
  }, LEASE_HEARTBEAT_MS);
  heartbeat.unref();

  const idle = setInterval(
    () => {
      const cutoff = Date.now() - opts.idleMs;
      for (const lease of [...leases.values()]) {
        if (lease.inFlight === 0 && lease.lastUsed <= cutoff) retire(lease);
      }
    },
    Math.max(50, Math.floor(opts.idleMs / 2)),
  );
  idle.unref();

  const listening = opts.listen
    ? Promise.all([
        opts.listen(BUDGETS_CHANNEL, (projectId) => forget(projectId)),
        opts.listen(PRESSURE_CHANNEL, (payload) => {
          const cut = payload.indexOf(':');
          const projectId = payload.slice(0, cut);
          if (cut < 0 || payload.slice(cut + 1) === owner) return;
          const lease = leases.get(projectId);
          if (lease) retire(lease);
        }),
      ]).catch((err: unknown) => {
        log.warn({ err }, 'could not listen for budget changes');
        return null;
      })
    : Promise.resolve(null);
  const unlisten = async () => {
    const stops = await listening;
    if (stops) await Promise.all(stops.map((stop) => stop()));
  };

  /**
   * A project's limits changed: they are read again on its next call, and a lease taken
   * under other limits goes back then (a lowered limit must not be spent from a chunk it no
   * longer allows).
   */
  function forget(projectId: string): void {
    limitsCache.delete(projectId);
  }

  return {
    admit,
    settle,
    forget,
    /** Returns every lease with no call in flight now (tests, and before a check of the books). */
    async releaseIdle(): Promise<void> {
      for (const lease of [...leases.values()]) if (lease.inFlight === 0) retire(lease);
      await Promise.all([...stored].filter((l) => l.retired && l.inFlight === 0).map(release));
    },
    /** Leases held by this instance, for metrics. */
    held: () => stored.size,
    /**
     * Stops upkeep (heartbeats, idle returns, budget notifications) without returning
     * anything: what the leases hold stays held until the sweeper finds them stale, as if
     * the process had died.
     */
    async stop(): Promise<void> {
      closed = true;
      clearInterval(heartbeat);
      clearInterval(idle);
      await unlisten();
    },
    /** Stops upkeep and returns the leases; a call still in flight leaves its lease to the sweeper. */
    async close(): Promise<void> {
      await this.stop();
      for (const lease of [...leases.values()]) retire(lease);
      await Promise.all([...stored].filter((l) => l.inFlight === 0).map(release));
    },
  };
}

export type Leases = ReturnType<typeof createLeases>;

/** A call's settlement: per budget row what leaves the lease, the charge, what leaves the balance hold. */
interface SettlePlan {
  s: Settlement;
  takes: bigint[];
  charge: bigint;
  balanceRelease: bigint;
}

interface SettleRow {
  /** The leases found (and renewed): one missing was swept meanwhile. */
  leases: string[];
  usage: Array<{
    limitId: string;
    periodStart: string;
    spent: string;
    amount: string;
    alertAt: number[];
    projectId: string;
  }>;
}

/**
 * The one statement that settles a batch. Each part takes its rows from a JSON parameter;
 * a part that reads the one before it (`select count(*) from ...`) runs after it, which
 * keeps the locking order: leases, budget rows, then lease holds and balances. A ledger
 * entry's balance_after is the new balance plus the charges entered after it.
 */
function settleStatement(plans: SettlePlan[]) {
  const leaseOut = new Map<string, bigint>();
  const rows = new Map<
    string,
    { limitId: string; periodStart: Date; spent: bigint; take: bigint; first: number }
  >();
  const holds = new Map<
    string,
    { leaseId: string; limitId: string; periodStart: Date; take: bigint }
  >();
  const entries = new Map<
    string,
    Array<{ amount: bigint; reference: string; metadata: unknown }>
  >();
  const balanceOut = new Map<string, { charge: bigint; release: bigint }>();
  for (const [i, { s, takes, charge, balanceRelease }] of plans.entries()) {
    const { lease, needs, requestId } = s.admission;
    if (lease.stored) leaseOut.set(lease.id, (leaseOut.get(lease.id) ?? 0n) + balanceRelease);
    if (balanceRelease > 0n || charge > 0n) {
      const b = balanceOut.get(lease.projectId) ?? { charge: 0n, release: 0n };
      b.charge += charge;
      b.release += balanceRelease;
      balanceOut.set(lease.projectId, b);
    }
    for (const [j, n] of needs.entries()) {
      const take = takes[j] ?? 0n;
      const r = rows.get(n.key) ?? {
        limitId: n.limitId,
        periodStart: n.periodStart,
        spent: 0n,
        take: 0n,
        first: i,
      };
      r.spent += s.cost;
      r.take += take;
      rows.set(n.key, r);
      if (take > 0n) {
        const hk = `${lease.id}|${n.key}`;
        const h = holds.get(hk) ?? {
          leaseId: lease.id,
          limitId: n.limitId,
          periodStart: n.periodStart,
          take: 0n,
        };
        h.take += take;
        holds.set(hk, h);
      }
    }
    if (charge > 0n) {
      const list = entries.get(lease.projectId) ?? [];
      list.push({
        amount: charge,
        reference: `charge:${requestId}`,
        metadata: {
          requestId,
          model: s.columns.model,
          cost: formatUsdc(s.charge),
          uncollected: formatUsdc(s.charge - charge),
        },
      });
      entries.set(lease.projectId, list);
    }
  }
  const json = (x: unknown) =>
    JSON.stringify(x, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
  const leaseProject = new Map(plans.map((p) => [p.s.admission.lease.id, p.s.columns.projectId]));
  const leasesIn = json(
    [...leaseOut].sort().map(([id, out]) => ({ id, out, project_id: leaseProject.get(id) })),
  );
  const usageIn = json(
    [...rows.values()]
      .filter((r) => r.spent > 0n || r.take > 0n)
      .sort(byLimitAndPeriod)
      .map((r) => ({ limit_id: r.limitId, period_start: r.periodStart, spent: r.spent })),
  );
  const holdsIn = json(
    [...holds.values()].map((h) => ({
      lease_id: h.leaseId,
      limit_id: h.limitId,
      period_start: h.periodStart,
      take: h.take,
    })),
  );
  const balancesIn = [...balanceOut]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([projectId, b]) => ({ project_id: projectId, charge: b.charge, release: b.release }));
  const entriesIn: Array<Record<string, unknown>> = [];
  for (const projectId of [...entries.keys()].sort()) {
    const list = entries.get(projectId) ?? [];
    let total = 0n;
    for (const e of list) total += e.amount;
    let later = total;
    for (const e of list) {
      later -= e.amount;
      entriesIn.push({
        project_id: projectId,
        amount: -e.amount,
        later,
        reference: e.reference,
        metadata: e.metadata,
      });
    }
  }
  const requestsIn = plans.map(({ s }) => finishedRow(s));
  const query = sql`
    with lin as (
      select * from jsonb_to_recordset(${leasesIn}::jsonb) as x(id uuid, out text, project_id uuid)
    ), hin as (
      select * from jsonb_to_recordset(${holdsIn}::jsonb)
        as x(lease_id uuid, limit_id uuid, period_start timestamptz, take text)
    ), l as (
      update gateway_leases g
      set heartbeat_at = now(), balance_held = g.balance_held - x.out::bigint
      from lin x
      where g.id = x.id
      returning g.id
    ), u as (
      -- What leaves the rows' reserved: only from leases still there (a swept one's holds
      -- went back with it).
      update budget_usage b
      set spent = b.spent + x.spent::bigint,
        reserved = b.reserved - coalesce((select sum(h.take::bigint) from hin h
          join l on l.id = h.lease_id
          where h.limit_id = b.limit_id and h.period_start = b.period_start), 0)
      from jsonb_to_recordset(${usageIn}::jsonb)
          as x(limit_id uuid, period_start timestamptz, spent text),
        budget_limits bl
      where b.limit_id = x.limit_id and b.period_start = x.period_start and bl.id = b.limit_id
        and (select count(*) from l) >= 0
      returning b.limit_id, b.period_start, b.spent, bl.amount, bl.alert_at, bl.project_id
    ), h as (
      update gateway_lease_holds g
      set amount = g.amount - x.take::bigint
      from hin x
      where g.lease_id = x.lease_id and g.limit_id = x.limit_id
        and g.period_start = x.period_start and (select count(*) from u) >= 0
      returning 1
    ), bal as (
      update project_balances p
      set balance = p.balance - x.charge::bigint,
        reserved = p.reserved - coalesce((select sum(i.out::bigint) from lin i
          join l on l.id = i.id where i.project_id = p.project_id), 0),
        updated_at = now()
      from jsonb_to_recordset(${json(balancesIn)}::jsonb)
        as x(project_id uuid, charge text, release text)
      where p.project_id = x.project_id and (select count(*) from u) >= 0
      returning p.project_id, p.balance
    ), led as (
      insert into ledger_entries (project_id, kind, amount, balance_after, reference, metadata)
      select x.project_id, 'charge'::ledger_kind, x.amount::bigint, bal.balance + x.later::bigint,
        x.reference, x.metadata
      from jsonb_to_recordset(${json(entriesIn)}::jsonb)
          as x(project_id uuid, amount text, later text, reference text, metadata jsonb)
        join bal on bal.project_id = x.project_id
      returning 1
    ), req as (${finishedRequests(requestsIn)}
    ), roll as (${rollUpFrom('req')}
    )
    select coalesce((select json_agg(l.id) from l), '[]'::json) as leases,
      (select count(*) from h) + (select count(*) from led) + (select count(*) from req) as written,
      coalesce((select json_agg(json_build_object('limitId', u.limit_id,
        'periodStart', u.period_start, 'spent', u.spent::text, 'amount', u.amount::text,
        'alertAt', u.alert_at, 'projectId', u.project_id)) from u), '[]'::json) as usage`;
  return { query, rows };
}

/** A budget threshold a spend reached: its alert fires once (the alert row's key). */
interface Crossing {
  limitId: string;
  periodStart: Date;
  threshold: number;
  spent: bigint;
  amount: bigint;
  projectId: string;
  /** Which call of a batch crossed it (its settlement reports the alert). */
  first: number;
}

/** Fires the alerts of `crossed` not fired yet: each an alert row and a budget.alert event. */
async function fireAlerts(
  db: Db,
  bus: EventBus,
  crossed: Crossing[],
): Promise<Array<{ projectId: string; alert: BudgetAlert; first: number }>> {
  if (crossed.length === 0) return [];
  return db.transaction(async (tx) => {
    const fired: Array<{ projectId: string; alert: BudgetAlert; first: number }> = [];
    for (const c of crossed) {
      const inserted = await tx
        .insert(budgetAlerts)
        .values({
          limitId: c.limitId,
          periodStart: c.periodStart,
          threshold: c.threshold,
          spent: c.spent,
        })
        .onConflictDoNothing()
        .returning({ limitId: budgetAlerts.limitId });
      if (inserted.length === 0) continue;
      const alert = {
        limitId: c.limitId,
        threshold: c.threshold,
        spent: formatUsdc(c.spent),
        amount: formatUsdc(c.amount),
      };
      await bus.publish({
        topic: budgetTopic(c.projectId),
        type: 'budget.alert',
        payload: alert,
        db: tx,
      });
      fired.push({ projectId: c.projectId, alert, first: c.first });
    }
    return fired;
  });
}

/**
 * Alerts a settlement crossed but did not get to fire: they go out in a transaction after the
 * settlement's statement, so a crash between the two would lose them. The sweeper fires every
 * threshold the spend of a recent (or total) period has reached without its alert row.
 */
export async function catchUpAlerts(
  db: Db,
  bus: EventBus,
): Promise<Array<{ projectId: string; alert: BudgetAlert }>> {
  const missed = rowsOf<{
    limitId: string;
    periodStart: string;
    threshold: number;
    spent: string;
    amount: string;
    projectId: string;
  }>(
    await db.execute(sql`
      select u.limit_id as "limitId", u.period_start as "periodStart", t.threshold,
        u.spent::text as spent, l.amount::text as amount, l.project_id as "projectId"
      from ${budgetUsage} u
        join ${budgetLimits} l on l.id = u.limit_id
        cross join lateral (select value::float4 as threshold
          from jsonb_array_elements_text(l.alert_at)) t
      where u.spent > 0
        and (u.period_start >= now() - interval '35 days' or l.period = 'total')
        and u.spent >= l.amount * round(t.threshold::float8 * 1000000)::bigint / 1000000
        and not exists (select 1 from ${budgetAlerts} a where a.limit_id = u.limit_id
          and a.period_start = u.period_start and a.threshold = t.threshold)
      limit 100`),
  );
  const fired = await fireAlerts(
    db,
    bus,
    missed.map((m) => ({
      limitId: m.limitId,
      periodStart: new Date(m.periodStart),
      threshold: m.threshold,
      spent: BigInt(m.spent),
      amount: BigInt(m.amount),
      projectId: m.projectId,
      first: 0,
    })),
  );
  return fired.map(({ projectId, alert }) => ({ projectId, alert }));
}

/**
 * Returns one lease's holds to its rows and deletes it, in the locking order (lease first);
 * with `staleMs`, only if its heartbeat is older by the database's clock (the sweeper; SKIP
 * LOCKED leaves a lease
 * busy settling alone). Resolves to whether it was returned here.
 */
async function returnLease(db: Db, leaseId: string, staleMs: number | null): Promise<boolean> {
  return db.transaction(async (tx) => {
    const [lease] = await tx
      .select({ projectId: gatewayLeases.projectId, balanceHeld: gatewayLeases.balanceHeld })
      .from(gatewayLeases)
      .where(
        staleMs !== null
          ? and(eq(gatewayLeases.id, leaseId), staleClause(staleMs))
          : eq(gatewayLeases.id, leaseId),
      )
      .for('update', staleMs !== null ? { skipLocked: true } : {});
    if (!lease) return false;
    const holds = await tx
      .select()
      .from(gatewayLeaseHolds)
      .where(eq(gatewayLeaseHolds.leaseId, leaseId));
    const writes: Promise<unknown>[] = [];
    for (const h of holds.sort(byLimitAndPeriod)) {
      if (h.amount === 0n) continue;
      writes.push(
        tx
          .update(budgetUsage)
          .set({ reserved: sql`${budgetUsage.reserved} - ${h.amount}` })
          .where(
            and(eq(budgetUsage.limitId, h.limitId), eq(budgetUsage.periodStart, h.periodStart)),
          ),
      );
    }
    if (lease.balanceHeld > 0n) {
      writes.push(
        tx
          .update(projectBalances)
          .set({ reserved: sql`${projectBalances.reserved} - ${lease.balanceHeld}` })
          .where(eq(projectBalances.projectId, lease.projectId)),
      );
    }
    writes.push(tx.delete(gatewayLeases).where(eq(gatewayLeases.id, leaseId)));
    await Promise.all(writes);
    return true;
  });
}

/** A heartbeat older than `staleMs` by the database's clock (the one every heartbeat uses). */
const staleClause = (staleMs: number) =>
  lt(gatewayLeases.heartbeatAt, sql`now() - make_interval(secs => ${staleMs / 1000})`);

/** Returns the leases of instances that died (heartbeat older than `staleMs`). */
export async function sweepLeases(db: Db, staleMs: number): Promise<number> {
  const stale = await db
    .select({ id: gatewayLeases.id })
    .from(gatewayLeases)
    .where(staleClause(staleMs));
  let returned = 0;
  for (const { id } of stale) if (await returnLease(db, id, staleMs)) returned++;
  return returned;
}

/** A settled call's usage row. */
function finishedRow(s: Settlement): FinishedRequest {
  return {
    id: s.admission.requestId,
    project_id: s.columns.projectId,
    user_id: s.columns.userId,
    key_id: s.columns.keyId,
    agent_id: s.columns.agentId,
    run_id: s.columns.runId,
    conversation_id: s.columns.conversationId,
    source: s.columns.source,
    model: s.columns.model,
    status: s.status,
    error_code: s.errorCode,
    input_tokens: s.inputTokens,
    output_tokens: s.outputTokens,
    cache_write_tokens: s.cacheWriteTokens,
    cache_read_tokens: s.cacheReadTokens,
    cost: s.cost.toString(),
    latency_ms: s.latencyMs,
    created_at: s.startedAt,
  };
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
