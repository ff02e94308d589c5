import { and, asc, eq, inArray } from 'drizzle-orm';
import type { Db } from '../../db/client';
import type { EventBus } from '../../events/bus';
import { type Actor, actorKeyId } from '../../lib/actor';
import { AppError } from '../../lib/errors';
import { keyset, type Page, toPage } from '../../lib/pagination';
import { findAgentRow } from '../agents/agents.service';
import { cancelApprovals, listApprovals } from './approvals';
import { publishRunEvent } from './run-store';
import { type Run, type RunApproval, type RunStep, toRun, toStep } from './runs.dto';
import { runSteps, runs } from './runs.table';

function runWithKey(db: Db, projectId: string, idempotencyKey: string) {
  return db
    .select()
    .from(runs)
    .where(and(eq(runs.projectId, projectId), eq(runs.idempotencyKey, idempotencyKey)));
}

/**
 * Records a queued run; the same idempotency key in a project returns the same run, also to
 * concurrent starts: the unique index decides, with ON CONFLICT, so no start waits on a lock
 * a chosen key could share with other work.
 */
export async function startRun(opts: {
  db: Db;
  projectId: string;
  agentId: string;
  actor: Actor;
  input: string;
  idempotencyKey?: string | undefined;
}): Promise<{ run: Run; created: boolean }> {
  const key = opts.idempotencyKey;
  if (key) {
    const [existing] = await runWithKey(opts.db, opts.projectId, key);
    if (existing) return { run: toRun(existing), created: false };
  }
  const agent = await findAgentRow(opts.db, opts.agentId);
  if (!agent) throw new AppError('agents.not_found', 'Not found');
  if (agent.status !== 'active') throw new AppError('agents.inactive', 'This agent is inactive');
  const [row] = await opts.db
    .insert(runs)
    .values({
      projectId: opts.projectId,
      agentId: agent.id,
      activeAgentId: agent.id,
      input: opts.input,
      idempotencyKey: key ?? null,
      createdBy: opts.actor.userId,
      createdByKey: actorKeyId(opts.actor),
      transcript: [{ role: 'user', content: opts.input }],
    })
    .onConflictDoNothing({ target: [runs.projectId, runs.idempotencyKey] })
    .returning();
  if (row) return { run: toRun(row), created: true };
  // A concurrent start with this key committed first (the insert waited for it): its run.
  const [winner] = key ? await runWithKey(opts.db, opts.projectId, key) : [];
  if (!winner) throw new Error('idempotency key taken, yet no run has it');
  return { run: toRun(winner), created: false };
}

export async function getRun(
  db: Db,
  runId: string,
): Promise<Run & { steps: RunStep[]; approvals: RunApproval[] }> {
  const [row] = await db.select().from(runs).where(eq(runs.id, runId));
  if (!row) throw new AppError('runs.not_found', 'Not found');
  const [steps, approvals] = await Promise.all([
    db.select().from(runSteps).where(eq(runSteps.runId, runId)).orderBy(asc(runSteps.index)),
    listApprovals(db, runId),
  ]);
  return { ...toRun(row), steps: steps.map(toStep), approvals };
}

export async function listRuns(opts: {
  db: Db;
  projectId: string;
  agentId?: string | undefined;
  cursor?: string | undefined;
  limit: number;
}): Promise<Page<Run>> {
  const page = keyset({ at: runs.createdAt, id: runs.id, cursor: opts.cursor, direction: 'desc' });
  const rows = await opts.db
    .select()
    .from(runs)
    .where(
      and(
        eq(runs.projectId, opts.projectId),
        opts.agentId ? eq(runs.agentId, opts.agentId) : undefined,
        page.where,
      ),
    )
    .orderBy(...page.orderBy)
    .limit(opts.limit + 1);
  return toPage(rows, opts.limit, (r) => ({ at: r.createdAt, id: r.id }), toRun);
}

/**
 * Cancels a run that no worker holds (queued, or waiting for approval: its pending approvals
 * close with it) at once; a running one is stopped by its worker (see runner).
 */
export async function cancelQueued(opts: {
  db: Db;
  bus: EventBus;
  runId: string;
}): Promise<boolean> {
  return opts.db.transaction(async (tx) => {
    const [row] = await tx
      .update(runs)
      .set({ status: 'cancelled', finishedAt: new Date() })
      .where(and(eq(runs.id, opts.runId), inArray(runs.status, ['queued', 'awaiting_approval'])))
      .returning({ id: runs.id });
    if (!row) return false;
    await cancelApprovals(tx, opts.runId);
    await publishRunEvent(opts, opts.runId, { type: 'run.cancelled' }, tx);
    return true;
  });
}

/**
 * Cancels the run writing a reply in a conversation with its agent, wherever it is: at once
 * when no worker holds it, else through its worker. False when no run writes this reply.
 */
export async function cancelRunOfReply(opts: {
  db: Db;
  bus: EventBus;
  runner: { cancel(runId: string): Promise<void> };
  replyId: string;
}): Promise<boolean> {
  const [run] = await opts.db
    .select({ id: runs.id })
    .from(runs)
    .where(eq(runs.replyId, opts.replyId));
  if (!run) return false;
  if (!(await cancelQueued({ db: opts.db, bus: opts.bus, runId: run.id }))) {
    await opts.runner.cancel(run.id);
  }
  return true;
}
