import { z } from 'zod';
import { AppError } from '../../lib/errors';
import { formatUsdc, usdcAmount } from '../../lib/money';
import { liveTopic } from '../../realtime/subscriptions';
import { projectProcedure, resourceProcedure, router } from '../../trpc';
import { keyProjectId } from '../api-keys/api-keys.service';
import { ownedBy } from '../auth/auth.service';
import { getBalance } from '../billing/billing.service';
import { requireMembership } from '../projects/projects.service';
import { spentThisMonth } from '../usage/usage.service';
import { type BudgetAlert, budgetTopic } from './budgets.dto';
import * as budgets from './budgets.service';
import { budgetLimits } from './budgets.table';

export const budgetsRouter = router({
  /** Balance, limits with their current-period spend, and this calendar month's spend. */
  get: projectProcedure('viewer').query(async ({ ctx }) => {
    const projectId = ctx.membership.projectId;
    const [balance, limits, spent] = await Promise.all([
      getBalance(ctx.db, projectId),
      budgets.listLimits(ctx.db, projectId),
      spentThisMonth(ctx.db, projectId),
    ]);
    return {
      balance: formatUsdc(balance.balance),
      reserved: formatUsdc(balance.reserved),
      limits,
      spentThisPeriod: formatUsdc(spent),
    };
  }),

  setLimit: projectProcedure('admin')
    .input(
      z.object({
        scope: z.enum(['project', 'agent', 'member', 'key']),
        scopeId: z.uuid().optional(),
        period: z.enum(['day', 'week', 'month', 'total']),
        amount: usdcAmount,
        alertAt: z.array(z.number().gt(0).lte(1)).max(10).optional(),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      const projectId = ctx.membership.projectId;
      if ((input.scope === 'project') !== (input.scopeId === undefined)) {
        throw new AppError(
          'budget.invalid_scope',
          input.scope === 'project'
            ? 'A project limit takes no scopeId'
            : `A ${input.scope} limit needs a scopeId`,
        );
      }
      if (input.scope === 'member' && input.scopeId) {
        await requireMembership({ db: ctx.db, projectId, userId: input.scopeId }).catch(() => {
          throw new AppError('budget.invalid_scope', 'scopeId is not a member of this project');
        });
      }
      if (input.scope === 'key' && input.scopeId) {
        if ((await keyProjectId(ctx.db, input.scopeId)) !== projectId) {
          throw new AppError('budget.invalid_scope', 'scopeId is not an API key of this project');
        }
      }
      const limit = await budgets.setLimit({
        db: ctx.db,
        actor: ctx.actor,
        projectId,
        scope: input.scope,
        scopeId: input.scopeId ?? null,
        period: input.period,
        amount: input.amount,
        alertAt: input.alertAt ?? [],
      });
      // At once here; other instances on the NOTIFY.
      ctx.gateway.forgetBudget(projectId);
      return limit;
    }),

  removeLimit: resourceProcedure('admin', {
    input: z.object({ limitId: z.uuid() }),
    notFound: 'budget.limit_not_found',
    id: 'limitId',
    owner: ownedBy('budget_limit', budgetLimits, budgetLimits.id, budgetLimits.projectId),
  }).mutation(async ({ ctx, input }) => {
    await budgets.removeLimit({
      db: ctx.db,
      actor: ctx.actor,
      projectId: ctx.membership.projectId,
      limitId: input.limitId,
    });
    ctx.gateway.forgetBudget(ctx.membership.projectId);
    return { ok: true as const };
  }),

  /** Alerts as thresholds are crossed, once per threshold per period; resumable. */
  onAlert: projectProcedure('admin')
    .input(z.object({ lastEventId: z.string().max(20).nullish() }))
    .subscription(({ ctx, input, signal }) =>
      liveTopic({
        ctx,
        minRole: 'admin',
        topic: budgetTopic(ctx.membership.projectId),
        lastEventId: input.lastEventId,
        signal,
        map: (e) => e.payload as unknown as BudgetAlert,
      }),
    ),
});
