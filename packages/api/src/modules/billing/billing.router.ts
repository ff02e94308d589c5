import { eq } from 'drizzle-orm';
import { z } from 'zod';
import { AppError } from '../../lib/errors';
import { usdcAmount } from '../../lib/money';
import { adminProcedure, router } from '../../trpc';
import { recordAudit } from '../audit/audit.service';
import { projects } from '../projects/projects.table';
import { applyLedgerEntry } from './billing.service';

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
    .mutation(async ({ ctx, input }) => {
      const [project] = await ctx.db
        .select({ id: projects.id })
        .from(projects)
        .where(eq(projects.id, input.projectId));
      if (!project) throw new AppError('projects.not_found', 'No such project');
      const reference = `credit:${input.idempotencyKey ?? crypto.randomUUID()}`;
      return ctx.db.transaction(async (tx) => {
        const { entry, applied } = await applyLedgerEntry({
          tx,
          projectId: input.projectId,
          kind: 'credit',
          amount: input.amount,
          reference,
          reason: input.reason,
          actorId: ctx.user.id,
        });
        // Last in the transaction: the audit append holds a global lock until commit.
        if (applied) {
          await recordAudit({
            db: tx,
            actorId: ctx.user.id,
            action: 'payments.credited',
            projectId: input.projectId,
            target: entry.id,
            ip: ctx.req.ip,
            metadata: {
              amount: entry.amount,
              balanceAfter: entry.balanceAfter,
              reason: input.reason,
            },
          });
        }
        return entry;
      });
    }),
});
