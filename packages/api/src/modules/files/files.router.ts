import { TRPCError } from '@trpc/server';
import { z } from 'zod';
import { AppError } from '../../lib/errors';
import { listInput } from '../../lib/pagination';
import {
  authedProcedure,
  projectProcedure,
  resourceProcedure,
  router,
  toTRPCError,
} from '../../trpc';
import { ownedBy } from '../auth/auth.service';
import { requireMembership } from '../projects/projects.service';
import { roleAtLeast } from '../projects/roles';
import * as filesService from './files.service';
import { files } from './files.table';
import { tooLarge } from './sniff';

const uploadFields = z.object({
  projectId: z.uuid(),
  file: z.instanceof(Blob, { message: 'Attach the file as the `file` field' }),
});

/**
 * Multipart input cannot go through projectProcedure's JSON parser, so the same membership
 * rule is applied here once the fields are read: a non-member gets NOT_FOUND, a viewer
 * FORBIDDEN.
 */
const uploadProcedure = authedProcedure
  .meta({ auth: { project: 'member' } })
  // A body past the HTTP layer's cap fails while the FormData is read, before any field is
  // seen; give it the same app code as a file found too large afterwards.
  .use(async ({ ctx, next }) => {
    const result = await next();
    if (!result.ok && result.error.code === 'PAYLOAD_TOO_LARGE') {
      const cause = result.error.cause;
      if (!(cause instanceof AppError))
        throw toTRPCError(tooLarge(ctx.config.files.uploadMaxBytes));
    }
    return result;
  })
  .input(z.instanceof(FormData))
  .use(async ({ ctx, input, next }) => {
    const parsed = uploadFields.safeParse({
      projectId: input.get('projectId') ?? undefined,
      file: input.get('file') ?? undefined,
    });
    if (!parsed.success) {
      throw new TRPCError({ code: 'BAD_REQUEST', message: 'Invalid input', cause: parsed.error });
    }
    const membership = await requireMembership({
      db: ctx.db,
      projectId: parsed.data.projectId,
      userId: ctx.user.id,
    });
    if (!roleAtLeast(membership.role, 'member')) {
      throw new AppError('projects.role_insufficient', 'This needs the member role or higher');
    }
    return next({ ctx: { membership, upload: parsed.data.file } });
  });

export const filesRouter = router({
  upload: uploadProcedure
    .meta({
      description:
        'multipart/form-data with `projectId` and `file`. At most UPLOAD_MAX_BYTES; the type ' +
        'is sniffed from the bytes; text, Markdown, JSON, CSV, HTML and PDF become searchable ' +
        'documents for grounded chat and agents.',
    })
    .mutation(({ ctx }) =>
      filesService.uploadFile({
        db: ctx.db,
        storage: ctx.storage,
        log: ctx.log,
        projectId: ctx.membership.projectId,
        actor: ctx.actor,
        file: ctx.upload,
        fileName: ctx.upload instanceof File ? ctx.upload.name : 'file',
        maxBytes: ctx.config.files.uploadMaxBytes,
      }),
    ),
  list: projectProcedure('viewer')
    .input(listInput)
    .query(({ ctx, input }) =>
      filesService.listFiles({
        db: ctx.db,
        projectId: ctx.membership.projectId,
        cursor: input.cursor,
        limit: input.limit,
      }),
    ),
  delete: resourceProcedure('admin', {
    input: z.object({ fileId: z.uuid() }),
    notFound: 'files.not_found',
    id: 'fileId',
    owner: ownedBy('file', files, files.id, files.projectId),
  }).mutation(({ ctx, input }) =>
    filesService.deleteFile({
      db: ctx.db,
      storage: ctx.storage,
      log: ctx.log,
      fileId: input.fileId,
      actor: ctx.actor,
    }),
  ),
});
