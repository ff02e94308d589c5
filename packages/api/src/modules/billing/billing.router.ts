import { z } from 'zod';
import { usdcAmount } from '../../lib/money';
import { adminProcedure, router } from '../../trpc';
import { creditProject } from './billing.service';

export const paymentsRouter = router({
  /** Manual credit by a platform admin: a ledger entry like any other. */
  credit: adminProcedure
    .input(
      z.object({
        projectId: z.uuid(),
        amount: usdcAmount,
        reason: z.string().trim().min(3).max(500),
        /** Makes a retried request apply once. */
        idempotencyKey: z.string().min(8).max(100).optional(),
      }),
    )
    .mutation(({ ctx, input }) => creditProject({ db: ctx.db, actor: ctx.actor, ...input })),
});
