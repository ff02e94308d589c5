import { z } from 'zod';
import { listInput } from '../../lib/pagination';
import { adminProcedure, authedProcedure, router } from '../../trpc';
import type { User } from './users.dto';
import * as users from './users.service';

export const usersRouter = router({
  // The session check has just read this user; no second query.
  me: authedProcedure.query(({ ctx }): User => {
    const { id, email, name, role, createdAt } = ctx.user;
    return { id, email, name, role, createdAt };
  }),

  update: authedProcedure
    .input(z.object({ name: z.string().trim().min(1).max(100).optional() }).prefault({}))
    .mutation(({ ctx, input }) =>
      users.updateProfile({ db: ctx.db, userId: ctx.user.id, ...input }),
    ),

  list: adminProcedure
    .input(listInput.extend({ query: z.string().trim().max(100).optional() }).prefault({}))
    .query(({ ctx, input }) => users.listUsers({ db: ctx.db, ...input })),

  setRole: adminProcedure
    .input(z.object({ userId: z.uuid(), role: z.enum(['user', 'admin']) }))
    .mutation(({ ctx, input }) => users.setRole({ db: ctx.db, actor: ctx.actor, ...input })),

  setActive: adminProcedure
    .input(z.object({ userId: z.uuid(), active: z.boolean() }))
    .mutation(({ ctx, input }) => users.setActive({ db: ctx.db, actor: ctx.actor, ...input })),
});
