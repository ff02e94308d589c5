import { z } from 'zod';
import { AppError } from '../../lib/errors';
import { instantInput } from '../../lib/input';
import { listInput } from '../../lib/pagination';
import { adminProcedure, authedProcedure, router } from '../../trpc';
import { requireMembership } from '../projects/projects.service';
import { roleAtLeast } from '../projects/roles';
import * as audit from './audit.service';

const listAuditInput = listInput
  .extend({
    projectId: z.uuid().optional(),
    actorId: z.uuid().optional(),
    action: z.string().trim().min(1).max(100).optional(),
    from: instantInput.optional(),
    to: instantInput.optional(),
  })
  // The input may be left out: prefault (unlike default) parses {}, so `limit` gets its default.
  .prefault({});

/**
 * A project's log is for its admins and owners (a non-member gets NOT_FOUND, as everywhere);
 * the whole log, and any project's, is for platform admins.
 */
const auditReader = authedProcedure.input(listAuditInput).use(async ({ ctx, input, next }) => {
  if (ctx.user.role === 'admin') return next();
  if (input.projectId === undefined) throw new AppError('auth.admin_required', 'Admins only');
  const membership = await requireMembership({
    db: ctx.db,
    projectId: input.projectId,
    userId: ctx.user.id,
  });
  if (!roleAtLeast(membership.role, 'admin')) {
    throw new AppError('projects.role_insufficient', 'This needs the admin role or higher');
  }
  return next();
});

export const auditRouter = router({
  list: auditReader
    // Its own check above: project admins, or platform admins for any project or none.
    .meta({
      auth: { project: 'admin' },
      description:
        "A project's log for its admins and owners (projectId required). Platform admins may " +
        'read any project, or omit projectId for the whole log.',
    })
    .query(({ ctx, input }) => audit.listAudit({ db: ctx.db, ...input })),
  verify: adminProcedure.query(({ ctx }) => audit.verifyAudit({ db: ctx.db })),
});
