import { z } from 'zod';
import { usdcAmount } from '../../lib/money';
import { projectProcedure, router } from '../../trpc';
import * as policies from './policies.service';

const positiveInt = z.number().int().positive().max(100_000_000);

export const policiesRouter = router({
  get: projectProcedure('viewer').query(({ ctx }) =>
    policies.getPolicy(ctx.db, ctx.membership.projectId),
  ),

  /** Fields left out stay; `null` removes that rule. */
  update: projectProcedure('admin')
    .input(
      z.object({
        allowedModels: z.array(z.string().min(1).max(100)).max(100).nullable().optional(),
        maxOutputTokens: positiveInt.nullable().optional(),
        maxCostPerRequest: usdcAmount.nullable().optional(),
        requestsPerMinute: positiveInt.nullable().optional(),
        tokensPerMinute: positiveInt.nullable().optional(),
        approvalCostThreshold: usdcAmount
          .nullable()
          .optional()
          .describe(
            "A run's model step whose worst case (the reservation it would hold) is above this " +
              'many USDC waits for approval (runs.approve) first',
          ),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      const { projectId, ...patch } = input;
      const policy = await policies.updatePolicy({
        db: ctx.db,
        actor: ctx.actor,
        projectId,
        patch,
      });
      // At once here; other instances forget it when the NOTIFY arrives.
      ctx.gateway.policies.forget(projectId);
      return policy;
    }),
});
