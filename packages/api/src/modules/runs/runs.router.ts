import { z } from 'zod';
import { listInput } from '../../lib/pagination';
import { liveTopic } from '../../realtime/subscriptions';
import { projectProcedure, resourceProcedure, router } from '../../trpc';
import { projectOfAgent } from '../agents/agents.service';
import type { RunEvent } from './runs.dto';
import { runTopic } from './runs.dto';
import * as runs from './runs.service';

const inRun = (minRole: 'viewer' | 'member') =>
  resourceProcedure(minRole, {
    input: z.object({ runId: z.uuid() }),
    notFound: 'runs.not_found',
    resolve: ({ db, input }) => runs.projectOfRun(db, input.runId),
  });

export const runsRouter = router({
  /** Records the run and returns at once (queued or running); a worker executes it. */
  start: resourceProcedure('member', {
    input: z.object({
      agentId: z.uuid(),
      input: z.string().min(1).max(100_000),
      idempotencyKey: z.string().min(1).max(200).optional(),
    }),
    notFound: 'agents.not_found',
    resolve: ({ db, input }) => projectOfAgent(db, input.agentId),
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
    const { steps: _, ...run } = await runs.getRun(ctx.db, input.runId);
    return run;
  }),

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
