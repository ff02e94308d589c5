import { z } from 'zod';
import { authedProcedure, publicProcedure, router, sessionUser } from '../../trpc';
import * as auth from './auth.service';
import { requestPasswordReset, resetPassword } from './password-reset.service';

const email = z.string().trim().toLowerCase().pipe(z.email().max(254));
// Length only, no composition rules (NIST 800-63B); the cap bounds hashing work.
const password = z.string().min(8).max(128);

export const authRouter = router({
  register: publicProcedure
    .input(z.object({ email, password, name: z.string().trim().min(1).max(100) }))
    .mutation(({ ctx, input }) =>
      auth.register({ db: ctx.db, config: ctx.config, ...input, client: ctx.req }),
    ),

  login: publicProcedure
    .input(z.object({ email, password: z.string().min(1).max(128) }))
    .mutation(({ ctx, input }) =>
      auth.login({
        db: ctx.db,
        config: ctx.config,
        limiter: ctx.sharedLimiter,
        ...input,
        client: ctx.req,
      }),
    ),

  refresh: publicProcedure
    .input(z.object({ refreshToken: z.string().min(1).max(200) }))
    .mutation(({ ctx, input }) =>
      auth.refresh({ db: ctx.db, config: ctx.config, ...input, client: ctx.req }),
    ),

  logout: publicProcedure
    .input(z.object({ refreshToken: z.string().min(1).max(200) }))
    .mutation(async ({ ctx, input }) => {
      await auth.logout({ db: ctx.db, ...input });
      return { ok: true as const };
    }),

  logoutAll: authedProcedure.mutation(async ({ ctx }) => {
    await auth.logoutAll({ db: ctx.db, actor: ctx.actor });
    return { ok: true as const };
  }),

  changePassword: authedProcedure
    .input(z.object({ currentPassword: z.string().min(1).max(128), newPassword: password }))
    .mutation(async ({ ctx, input }) => {
      await auth.changePassword({
        db: ctx.db,
        user: sessionUser(ctx.principal),
        actor: ctx.actor,
        ...input,
      });
      return { ok: true as const };
    }),

  // Same answer whether or not the email has an account.
  requestPasswordReset: publicProcedure
    .input(z.object({ email }))
    .mutation(async ({ ctx, input }) => {
      await requestPasswordReset({
        db: ctx.db,
        config: ctx.config,
        // Hourly limits must hold across instances, like sign-in attempts.
        limiter: ctx.sharedLimiter,
        mail: ctx.mail,
        email: input.email,
        client: ctx.req,
      });
      return { ok: true as const };
    }),

  resetPassword: publicProcedure
    .input(z.object({ token: z.string().min(1).max(200), newPassword: password }))
    .mutation(async ({ ctx, input }) => {
      // The sign-in limiter, whose lockout of the account a reset lifts.
      await resetPassword({ db: ctx.db, limiter: ctx.sharedLimiter, ...input, client: ctx.req });
      return { ok: true as const };
    }),
});
