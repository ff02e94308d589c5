import { z } from 'zod';
import { instantInput } from '../../lib/input';
import { projectProcedure, resourceProcedure, router } from '../../trpc';
import { ownedBy } from '../auth/auth.service';
import { projectRole } from '../projects/projects.table';
import * as apiKeys from './api-keys.service';
import { apiKeys as apiKeysTable } from './api-keys.table';

const MAX_LIFETIME_MS = 10 * 366 * 24 * 60 * 60 * 1000;

const expiresAt = instantInput.refine(
  (d) => d.getTime() > Date.now() && d.getTime() < Date.now() + MAX_LIFETIME_MS,
  { message: 'must be in the future and within 10 years' },
);

export const apiKeysRouter = router({
  create: projectProcedure('admin')
    .meta({
      keys: false,
      description:
        'Creates a project API key and returns its secret (`ssk_…`) once: only its hash is ' +
        'stored. Send it as `Authorization: Bearer ssk_…` (or WebSocket connectionParams ' +
        '`{ token }`). The key acts in this project only, with at most `role` and never above ' +
        "its creator's role; it stops working when revoked, expired, or when its creator " +
        'leaves the project. A key cannot create or revoke keys.',
    })
    .input(
      z.object({
        name: z.string().trim().min(1).max(100),
        role: z.enum(projectRole.enumValues),
        expiresAt: expiresAt.optional(),
      }),
    )
    .mutation(({ ctx, input }) =>
      apiKeys.createApiKey({
        db: ctx.db,
        membership: ctx.membership,
        actor: ctx.actor,
        name: input.name,
        role: input.role,
        expiresAt: input.expiresAt,
      }),
    ),
  list: projectProcedure('admin')
    .meta({
      description: 'The project’s keys, newest first, revoked ones included; never secrets.',
    })
    .query(({ ctx }) => apiKeys.listApiKeys({ db: ctx.db, projectId: ctx.membership.projectId })),
  revoke: resourceProcedure('viewer', {
    input: z.object({ keyId: z.uuid() }),
    notFound: 'apiKeys.not_found',
    id: 'keyId',
    owner: ownedBy('api_key', apiKeysTable, apiKeysTable.id, apiKeysTable.projectId),
  })
    .meta({
      keys: false,
      description:
        'Revokes a key at once on every instance (its open sockets close with 4001). Project ' +
        'admins may revoke any key of the project, the creator their own.',
    })
    .mutation(({ ctx, input }) =>
      apiKeys.revokeApiKey({
        db: ctx.db,
        membership: ctx.membership,
        actor: ctx.actor,
        keyId: input.keyId,
      }),
    ),
});
