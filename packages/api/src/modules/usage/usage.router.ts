import { z } from 'zod';
import { instantInput } from '../../lib/input';
import { listInput } from '../../lib/pagination';
import { projectProcedure, router } from '../../trpc';
import * as usage from './usage.service';

const fieldsValid = (payload: { issues: unknown[] }) => payload.issues.length === 0;

export const usageRouter = router({
  summary: projectProcedure('viewer')
    .input(
      z
        .object({
          from: instantInput,
          to: instantInput,
          groupBy: z.enum(['day', 'model', 'agent', 'member', 'key']),
        })
        // Only once both are dates: zod runs object refinements even when a field failed.
        .refine((v) => v.from < v.to, {
          message: '`from` must be before `to`',
          path: ['to'],
          when: fieldsValid,
        })
        .refine((v) => v.to.getTime() - v.from.getTime() <= 366 * 86_400_000, {
          message: 'at most one year per query',
          path: ['to'],
          when: fieldsValid,
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
