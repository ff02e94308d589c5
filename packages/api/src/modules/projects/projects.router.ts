import { z } from 'zod';
import { listInput } from '../../lib/pagination';
import { authedProcedure, projectProcedure, router } from '../../trpc';
import * as projects from './projects.service';
import { projectRole } from './projects.table';

const name = z.string().trim().min(1).max(100);
const description = z.string().trim().max(2000);
const role = z.enum(projectRole.enumValues);

const membersRouter = router({
  list: projectProcedure('viewer').query(({ ctx }) =>
    projects.listMembers({ db: ctx.db, projectId: ctx.membership.projectId }),
  ),
  add: projectProcedure('admin')
    .input(z.object({ email: z.email().max(254), role }))
    .mutation(({ ctx, input }) =>
      projects.addMember({
        db: ctx.db,
        membership: ctx.membership,
        actor: ctx.actor,
        email: input.email,
        role: input.role,
      }),
    ),
  updateRole: projectProcedure('admin')
    .input(z.object({ userId: z.uuid(), role }))
    .mutation(({ ctx, input }) =>
      projects.updateMemberRole({
        db: ctx.db,
        membership: ctx.membership,
        actor: ctx.actor,
        userId: input.userId,
        role: input.role,
      }),
    ),
  remove: projectProcedure('admin')
    .input(z.object({ userId: z.uuid() }))
    .mutation(async ({ ctx, input }) => {
      await projects.removeMember({
        db: ctx.db,
        membership: ctx.membership,
        actor: ctx.actor,
        userId: input.userId,
      });
      return { ok: true as const };
    }),
});

export const projectsRouter = router({
  // The input may be left out: prefault (unlike default) parses {}, so `limit` gets its default.
  // A key sees its one project, with its own role.
  list: authedProcedure
    .meta({ keys: true })
    .input(listInput.prefault({}))
    .query(({ ctx, input }) =>
      projects.listProjects({
        db: ctx.db,
        userId: ctx.user.id,
        only: ctx.principal.kind === 'key' ? ctx.principal.key : undefined,
        ...input,
      }),
    ),

  create: authedProcedure
    .input(z.object({ name, description: description.optional() }))
    .mutation(({ ctx, input }) =>
      projects.createProject({ db: ctx.db, actor: ctx.actor, ...input }),
    ),

  get: projectProcedure('viewer').query(({ ctx }) =>
    projects.getProject({ db: ctx.db, membership: ctx.membership, row: ctx.project }),
  ),

  update: projectProcedure('admin')
    .input(z.object({ name: name.optional(), description: description.nullable().optional() }))
    .mutation(({ ctx, input }) =>
      projects.updateProject({ db: ctx.db, actor: ctx.actor, ...input }),
    ),

  delete: projectProcedure('owner').mutation(async ({ ctx }) => {
    await projects.deleteProject({
      db: ctx.db,
      actor: ctx.actor,
      projectId: ctx.membership.projectId,
    });
    return { ok: true as const };
  }),

  members: membersRouter,
});
