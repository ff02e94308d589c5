import { getAddress, type Hex, isAddress } from 'viem';
import { z } from 'zod';
import { authedProcedure, router } from '../../trpc';
import { siweOrigin } from './siwe';
import * as walletsService from './wallets.service';

export const evmAddressInput = z
  .string()
  .trim()
  .refine((v) => isAddress(v), 'a 0x-prefixed 20-byte address (valid checksum if mixed-case)')
  .transform((v) => getAddress(v));

export const walletsRouter = router({
  challenge: authedProcedure
    .meta({
      description:
        'A SIWE (EIP-4361) message for this address with a one-time nonce, valid 10 minutes. ' +
        'Sign it with the wallet and pass it to wallets.link.',
    })
    .input(z.object({ address: evmAddressInput }))
    .mutation(({ ctx, input }) =>
      walletsService.createChallenge({
        db: ctx.db,
        chain: ctx.chain,
        origin: siweOrigin(ctx.config.publicAppUrl),
        userId: ctx.user.id,
        address: input.address,
      }),
    ),

  link: authedProcedure
    .meta({
      description:
        'Links the wallet that signed a challenge (EOA, ERC-1271 or ERC-6492 smart wallet). ' +
        '`projectId`: deposits from it that nobody claims are credited there (you need the ' +
        'member role); null clears it. Linking again with a fresh challenge updates it.',
    })
    .input(
      z.object({
        message: z.string().min(1).max(4000),
        signature: z
          .string()
          .regex(/^0x[0-9a-fA-F]+$/, 'a 0x-prefixed hex signature')
          .max(20_000)
          .transform((s) => s as Hex),
        projectId: z.uuid().nullable().optional(),
      }),
    )
    .mutation(({ ctx, input }) =>
      walletsService.linkWallet({
        db: ctx.db,
        chain: ctx.chain,
        origin: siweOrigin(ctx.config.publicAppUrl),
        actor: ctx.actor,
        message: input.message,
        signature: input.signature,
        projectId: input.projectId,
      }),
    ),

  list: authedProcedure.query(({ ctx }) =>
    walletsService.listWallets({ db: ctx.db, userId: ctx.user.id }),
  ),

  unlink: authedProcedure
    .input(z.object({ walletId: z.uuid() }))
    .mutation(async ({ ctx, input }) => {
      await walletsService.unlinkWallet({
        db: ctx.db,
        actor: ctx.actor,
        walletId: input.walletId,
      });
      return { ok: true as const };
    }),
});
