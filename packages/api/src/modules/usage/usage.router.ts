import { z } from 'zod';
import { listInput } from '../../lib/pagination';
import { projectProcedure, router } from '../../trpc';
import * as usage from './usage.service';

export const usageRouter = router({
  summary: projectProcedure('viewer')
    .input(
      z
        .object({
          from: z.iso.datetime({ offset: true }).transform((s) => new Date(s)),
          to: z.iso.datetime({ offset: true }).transform((s) => new Date(s)),
          groupBy: z.enum(['day', 'model', 'agent', 'member']),
        })
        .refine((v) => v.from < v.to, { message: '`from` must be before `to`', path: ['to'] })
        .refine((v) => v.to.getTime() - v.from.getTime() <= 366 * 86_400_000, {
          message: 'at most one year per query',
          path: ['to'],
        }),
    )
    .query(({ ctx, input }) =>
      usage.summary({
        db: ctx.db,
        projectId: ctx.membership.projectId,
        from: input.from,
        to: input.to,
        groupBy: input.groupBy,
      }),
    ),

  requests: projectProcedure('admin')
    .input(listInput)
    .query(({ ctx, input }) =>
      usage.listRequests({
        db: ctx.db,
        projectId: ctx.membership.projectId,
        cursor: input.cursor,
        limit: input.limit,
      }),
    ),
});
