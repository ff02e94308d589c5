import type { Hash } from 'viem';
import { z } from 'zod';
import { listInput } from '../../lib/pagination';
import { adminProcedure, authedProcedure, projectProcedure, router } from '../../trpc';
import { paymentsRouter as ledgerRouter } from '../billing/billing.router';
import { confirmDeposit } from './deposits';
import * as paymentsService from './payments.service';

const txHash = z
  .string()
  .trim()
  .regex(/^0x[0-9a-fA-F]{64}$/, 'a 0x-prefixed 32-byte transaction hash')
  .transform((h) => h.toLowerCase() as Hash);

export const paymentsRouter = router({
  // Manual credits live with the ledger (billing); the rest of payments is on-chain USDC.
  credit: ledgerRouter.credit,

  config: authedProcedure
    .meta({
      description:
        'The chain, USDC contract and deposit address to pay to; `depositAddress` is null ' +
        'while deposits are not accepted.',
    })
    .query(({ ctx }) => paymentsService.paymentsConfig(ctx.chain)),

  confirmDeposit: projectProcedure('member')
    .meta({
      description:
        'Claims the USDC transfers of a transaction (to the deposit address, from a wallet ' +
        'linked to you) for the project. `pending` until the block has the configured ' +
        'confirmations, then `credited` (the watcher finishes it if you do not call again).',
    })
    .input(z.object({ txHash }))
    .mutation(({ ctx, input }) =>
      confirmDeposit({
        db: ctx.db,
        chain: ctx.chain,
        projectId: ctx.membership.projectId,
        actor: ctx.actor,
        txHash: input.txHash,
      }),
    ),

  list: projectProcedure('viewer')
    .input(listInput)
    .query(({ ctx, input }) =>
      paymentsService.listPayments({
        db: ctx.db,
        projectId: ctx.membership.projectId,
        cursor: input.cursor,
        limit: input.limit,
      }),
    ),

  unmatched: adminProcedure
    .meta({ description: 'Deposits nobody has claimed (unknown or unassigned senders).' })
    .input(listInput.prefault({}))
    .query(({ ctx, input }) => paymentsService.listUnmatched({ db: ctx.db, ...input })),

  assign: adminProcedure
    .meta({ description: 'Gives an unmatched deposit to a project (audited).' })
    .input(z.object({ paymentId: z.uuid(), projectId: z.uuid() }))
    .mutation(({ ctx, input }) =>
      paymentsService.assignPayment({
        db: ctx.db,
        chain: ctx.chain,
        paymentId: input.paymentId,
        projectId: input.projectId,
        actor: ctx.actor,
      }),
    ),
});
