import { and, asc, eq, inArray, lt, sql } from 'drizzle-orm';
import type { Db } from '../../db/client';
import type { EventBus } from '../../events/bus';
import { AppError } from '../../lib/errors';
import { recordAudit } from '../audit/audit.service';
import { publishRunEvent, publishRunEvents, type RunProgress, type StepRow } from './run-store';
import { type RunApproval, type RunEvent, toApproval } from './runs.dto';
import type { RunFailureCode } from './runs.errors';
import { type RunApprovalRow, runApprovals, runSteps, runs } from './runs.table';

/**
 * Steps that wait for a person. A run that reaches one stores its round so far, records an
 * approval per step still undecided and pauses ('awaiting_approval'): it holds no worker and
 * no budget while it waits. A decision on the last pending approval queues the run again, and
 * whichever instance claims it continues from the stored round (run-loop.ts).
 */

/** A step that needs a decision before it may run. */
export interface ApprovalRequest {
  stepKey: string;
  kind: 'tool' | 'model';
  agentId: string;
  tool: string | null;
  input: unknown;
  cost: bigint | null;
}

export type Decision = Pick<RunApprovalRow, 'status' | 'note'>;

/** The decisions recorded for these steps of a run, by step key. */
export async function decisionsFor(
  db: Db,
  runId: string,
  stepKeys: string[],
): Promise<Map<string, Decision>> {
  if (stepKeys.length === 0) return new Map();
  const rows = await db
    .select({ stepKey: runApprovals.stepKey, status: runApprovals.status, note: runApprovals.note })
    .from(runApprovals)
    .where(and(eq(runApprovals.runId, runId), inArray(runApprovals.stepKey, stepKeys)));
  return new Map(rows.map((r) => [r.stepKey, { status: r.status, note: r.note }]));
}

/** Thrown inside the run loop when a step needs a decision nobody has made yet. */
export class AwaitingApproval extends Error {
  override name = 'AwaitingApproval';
  constructor(readonly requests: ApprovalRequest[]) {
    super('the run waits for approval');
  }
}

/**
 * Pauses a running run: its progress, the round's steps and events, an approval (and its
 * approval.requested event) per request not yet recorded, and the status, in one transaction.
 * False when the run is no longer 'running' here (a sweeper took it): nothing is stored.
 */
export async function pauseForApproval(
  deps: { db: Db; bus: EventBus },
  opts: {
    runId: string;
    projectId: string;
    progress: RunProgress;
    steps: StepRow[];
    events: RunEvent[];
    requests: ApprovalRequest[];
    ttlMs: number;
  },
): Promise<boolean> {
  return deps.db.transaction(async (tx) => {
    const [row] = await tx
      .update(runs)
      .set({ ...opts.progress, status: 'awaiting_approval', heartbeatAt: null })
      .where(and(eq(runs.id, opts.runId), eq(runs.status, 'running')))
      .returning({ id: runs.id });
    if (!row) return false;
    if (opts.steps.length > 0) await tx.insert(runSteps).values(opts.steps);
    const expiresAt = new Date(Date.now() + opts.ttlMs);
    const created = await tx
      .insert(runApprovals)
      .values(
        opts.requests.map((r) => ({
          runId: opts.runId,
          projectId: opts.projectId,
          stepKey: r.stepKey,
          kind: r.kind,
          agentId: r.agentId,
          tool: r.tool,
          input: r.input,
          cost: r.cost,
          expiresAt,
        })),
      )
      .onConflictDoNothing({ target: [runApprovals.runId, runApprovals.stepKey] })
      .returning();
    const requested: RunEvent[] = created.map((a) => {
      const { id, kind, agentId, tool, input, cost, expiresAt: at } = toApproval(a);
      return {
        type: 'approval.requested',
        approvalId: id,
        kind,
        agentId,
        tool,
        input,
        cost,
        expiresAt: at,
      };
    });
    await publishRunEvents(deps, opts.runId, [...opts.events, ...requested], tx);
    return true;
  });
}

export async function listApprovals(db: Db, runId: string): Promise<RunApproval[]> {
  const rows = await db
    .select()
    .from(runApprovals)
    .where(eq(runApprovals.runId, runId))
    .orderBy(asc(runApprovals.requestedAt), asc(runApprovals.id));
  return rows.map(toApproval);
}

/**
 * Approves or rejects a pending approval of a run, once: the decision, an approval.decided
 * event and an audit entry commit together; when it was the run's last pending approval, the
 * run goes back to the queue. Returns whether the run was queued (the caller kicks a runner).
 */
export async function decideApproval(opts: {
  db: Db;
  bus: EventBus;
  runId: string;
  approvalId: string;
  decision: 'approved' | 'rejected';
  userId: string;
  keyId: string | null;
  note: string | null;
}): Promise<{ approval: RunApproval; queued: boolean }> {
  return opts.db.transaction(async (tx) => {
    const [row] = await tx
      .update(runApprovals)
      .set({
        status: opts.decision,
        decidedBy: opts.userId,
        decidedAt: new Date(),
        note: opts.note,
      })
      .where(
        and(
          eq(runApprovals.id, opts.approvalId),
          eq(runApprovals.runId, opts.runId),
          eq(runApprovals.status, 'pending'),
        ),
      )
      .returning();
    if (!row) {
      const [seen] = await tx
        .select({ status: runApprovals.status })
        .from(runApprovals)
        .where(and(eq(runApprovals.id, opts.approvalId), eq(runApprovals.runId, opts.runId)));
      if (!seen) throw new AppError('runs.approval_not_found', 'Not found');
      throw new AppError('runs.approval_closed', `This approval is already ${seen.status}`);
    }
    await publishRunEvent(
      { db: tx, bus: opts.bus },
      opts.runId,
      {
        type: 'approval.decided',
        approvalId: row.id,
        decision: opts.decision,
        by: opts.userId,
        note: opts.note,
      },
      tx,
    );
    // The run continues once nothing of it waits any more.
    const queued = await tx
      .update(runs)
      .set({ status: 'queued' })
      .where(
        and(
          eq(runs.id, opts.runId),
          eq(runs.status, 'awaiting_approval'),
          sql`not exists (select 1 from ${runApprovals} a
            where a.run_id = ${opts.runId} and a.status = 'pending')`,
        ),
      )
      .returning({ id: runs.id });
    await recordAudit({
      db: tx,
      actorId: opts.userId,
      actorKeyId: opts.keyId,
      action: opts.decision === 'approved' ? 'runs.step_approved' : 'runs.step_rejected',
      projectId: row.projectId,
      target: opts.runId,
      metadata: {
        approvalId: row.id,
        kind: row.kind,
        tool: row.tool,
        ...(opts.note ? { note: opts.note } : {}),
      },
    });
    return { approval: toApproval(row), queued: queued.length > 0 };
  });
}

/**
 * Approvals nobody decided in time: each expires, and its run (still waiting) fails
 * run.approval_expired. Returns how many runs it failed.
 */
export async function expireApprovals(deps: { db: Db; bus: EventBus }): Promise<number> {
  const due = await deps.db
    .selectDistinct({ runId: runApprovals.runId })
    .from(runApprovals)
    .where(and(eq(runApprovals.status, 'pending'), lt(runApprovals.expiresAt, new Date())))
    .limit(100);
  let failed = 0;
  for (const { runId } of due) {
    const ended = await deps.db.transaction(async (tx) => {
      await tx
        .update(runApprovals)
        .set({ status: 'expired' })
        .where(
          and(
            eq(runApprovals.runId, runId),
            eq(runApprovals.status, 'pending'),
            lt(runApprovals.expiresAt, new Date()),
          ),
        );
      const [row] = await tx
        .update(runs)
        .set({
          status: 'failed',
          error: { appCode: 'run.approval_expired', message: APPROVAL_EXPIRED },
          finishedAt: new Date(),
        })
        .where(and(eq(runs.id, runId), eq(runs.status, 'awaiting_approval')))
        .returning({ id: runs.id });
      if (!row) return false;
      // Others of the run still pending go with it: nothing is left to decide.
      await tx
        .update(runApprovals)
        .set({ status: 'expired' })
        .where(and(eq(runApprovals.runId, runId), eq(runApprovals.status, 'pending')));
      const appCode: RunFailureCode = 'run.approval_expired';
      await publishRunEvent(
        { db: tx, bus: deps.bus },
        runId,
        { type: 'run.failed', appCode, message: APPROVAL_EXPIRED },
        tx,
      );
      return true;
    });
    if (ended) failed++;
  }
  return failed;
}

const APPROVAL_EXPIRED = 'Nobody approved or rejected a step of this run in time';

/** A cancelled run's pending approvals: nothing is left to decide. */
export const cancelApprovals = (db: Db, runId: string) =>
  db
    .update(runApprovals)
    .set({ status: 'cancelled' })
    .where(and(eq(runApprovals.runId, runId), eq(runApprovals.status, 'pending')));
