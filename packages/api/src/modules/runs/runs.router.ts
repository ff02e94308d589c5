import { z } from 'zod';
import type { Config } from '../../config';
import type { Db } from '../../db/client';
import type { EventBus } from '../../events/bus';
import { type Actor, actorKeyId } from '../../lib/actor';
import { AppError } from '../../lib/errors';
import { listInput } from '../../lib/pagination';
import { liveTopic } from '../../realtime/subscriptions';
import { projectProcedure, resourceProcedure, router } from '../../trpc';
import { agentOwner } from '../agents/agents.router';
import { ownedBy } from '../auth/auth.service';
import { type ProjectRole, roleAtLeast } from '../projects/roles';
import { decideApproval } from './approvals';
import type { Runner } from './runner';
import type { RunApproval, RunEvent } from './runs.dto';
import { runTopic } from './runs.dto';
import * as runs from './runs.service';
import { runs as runsTable } from './runs.table';

const inRun = (minRole: 'viewer' | 'member') =>
  resourceProcedure(minRole, {
    input: z.object({ runId: z.uuid() }),
    notFound: 'runs.not_found',
    id: 'runId',
    owner: ownedBy('run', runsTable, runsTable.id, runsTable.projectId),
  });

/** approve/reject: project members of the configured role, checked in `decide`. */
const decision = (_: 'approved' | 'rejected') =>
  inRun('member').input(
    z.object({
      approvalId: z.uuid(),
      note: z.string().trim().min(1).max(2000).optional(),
    }),
  );

async function decide(
  ctx: {
    db: Db;
    bus: EventBus;
    config: Config;
    actor: Actor;
    membership: { role: ProjectRole; projectId: string };
    runner: Pick<Runner, 'kick'>;
  },
  input: { runId: string; approvalId: string; note?: string | undefined },
  verdict: 'approved' | 'rejected',
): Promise<RunApproval> {
  const min = ctx.config.runs.approverRole;
  if (!roleAtLeast(ctx.membership.role, min)) {
    throw new AppError(
      'projects.role_insufficient',
      `Approving steps needs the ${min} role or higher`,
    );
  }
  const { approval, queued } = await decideApproval({
    db: ctx.db,
    bus: ctx.bus,
    runId: input.runId,
    approvalId: input.approvalId,
    decision: verdict,
    userId: ctx.actor.userId,
    keyId: actorKeyId(ctx.actor),
    note: input.note ?? null,
  });
  if (queued) ctx.runner.kick(ctx.membership.projectId);
  return approval;
}

export const runsRouter = router({
  /** Records the run and returns at once (queued or running); a worker executes it. */
  start: resourceProcedure('member', {
    input: z.object({
      agentId: z.uuid(),
      input: z.string().min(1).max(100_000),
      idempotencyKey: z.string().min(1).max(200).optional(),
    }),
    notFound: 'agents.not_found',
    id: 'agentId',
    owner: agentOwner,
  }).mutation(async ({ ctx, input }) => {
    const { run, created } = await runs.startRun({
      db: ctx.db,
      projectId: ctx.membership.projectId,
      agentId: input.agentId,
      actor: ctx.actor,
      input: input.input,
      idempotencyKey: input.idempotencyKey,
    });
    if (created) ctx.runner.kick(run.projectId);
    return run;
  }),

  get: inRun('viewer').query(({ ctx, input }) => runs.getRun(ctx.db, input.runId)),

  list: projectProcedure('viewer')
    .input(listInput.extend({ agentId: z.uuid().optional() }))
    .query(({ ctx, input }) =>
      runs.listRuns({
        db: ctx.db,
        projectId: ctx.membership.projectId,
        agentId: input.agentId,
        cursor: input.cursor,
        limit: input.limit,
      }),
    ),

  cancel: inRun('member').mutation(async ({ ctx, input }) => {
    if (!(await runs.cancelQueued({ db: ctx.db, bus: ctx.bus, runId: input.runId }))) {
      await ctx.runner.cancel(input.runId);
    }
    const { steps: _, approvals: __, ...run } = await runs.getRun(ctx.db, input.runId);
    return run;
  }),

  approve: decision('approved')
    .meta({
      description:
        'Approves a step the run waits for (see approval.requested in onProgress and ' +
        "runs.get's approvals); the run continues once none is pending. Needs the role set " +
        'by RUN_APPROVER_ROLE (admin by default). Audited.',
    })
    .mutation(({ ctx, input }) => decide(ctx, input, 'approved')),

  reject: decision('rejected')
    .meta({
      description:
        'Rejects a step the run waits for: the call goes back to the model as a tool error ' +
        '(with the note), so it can choose another way. Same role as approve. Audited.',
    })
    .mutation(({ ctx, input }) => decide(ctx, input, 'rejected')),

  onProgress: inRun('viewer')
    .input(z.object({ lastEventId: z.string().max(20).nullish() }))
    .subscription(({ ctx, input, signal }) =>
      liveTopic({
        ctx,
        minRole: 'viewer',
        topic: runTopic(input.runId),
        lastEventId: input.lastEventId,
        signal,
        map: (e) => ({ type: e.type, ...e.payload }) as RunEvent,
      }),
    ),
});
