import { type Api, findReadableFile } from '@smartspace/api';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { contentDisposition, contentTypeHeader, dispositionFor, parseRange } from './files-http';

export interface FilesPluginOptions {
  api: Api;
  bearer: (header: string | undefined) => string | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * GET/HEAD /files/:fileId: downloads for any member of the file's project (viewer and up),
 * with a Bearer access token, or a project API key of the file's project. A file in a project the caller is not in answers 404, exactly
 * like one that does not exist.
 */
export async function filesPlugin(app: FastifyInstance, { api, bearer }: FilesPluginOptions) {
  const notFound = (reply: FastifyReply) =>
    reply.status(404).send({ error: 'File not found', statusCode: 404 });

  app.route({
    method: ['GET', 'HEAD'],
    url: '/files/:fileId',
    handler: async (req, reply) => {
      const token = bearer(req.headers.authorization);
      const ctx = api.createContext({
        token,
        ip: req.ip,
        requestId: req.id,
        userAgent: req.headers['user-agent'],
      });
      const auth = token ? await ctx.authenticate() : null;
      if (!auth?.ok) {
        return reply
          .status(401)
          .header('www-authenticate', 'Bearer')
          .send({
            error:
              auth && auth.code !== 'auth.unauthenticated'
                ? auth.message
                : 'Sign in to download files',
            appCode: auth?.code ?? 'auth.unauthenticated',
            statusCode: 401,
          });
      }
      const { principal } = auth;
      const { fileId } = req.params as { fileId: string };
      if (!UUID.test(fileId)) return notFound(reply);
      const file = await findReadableFile({
        db: api.deps.db,
        fileId,
        userId: principal.user.id,
        projectId: principal.kind === 'key' ? principal.key.projectId : undefined,
      });
      if (!file) return notFound(reply);

      const etag = `"${file.sha256}"`;
      reply
        .header('content-type', contentTypeHeader(file.mimeType))
        .header('content-disposition', contentDisposition(dispositionFor(file.mimeType), file.name))
        .header('etag', etag)
        .header('last-modified', new Date(file.createdAt).toUTCString())
        .header('accept-ranges', 'bytes')
        // Access can be revoked, so caches must ask again (a 304 is cheap).
        .header('cache-control', 'private, no-cache')
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', 'sandbox');

      if (matches(req.headers['if-none-match'], etag)) return reply.status(304).send();

      // If-Range with a different validator: the client's partial copy is stale, send it all.
      const ifRange = req.headers['if-range'];
      const range =
        ifRange === undefined || ifRange === etag
          ? parseRange(req.headers.range, file.size)
          : ({ kind: 'full' } as const);
      if (range.kind === 'unsatisfiable') {
        reply.removeHeader('content-disposition');
        return reply
          .status(416)
          .header('content-range', `bytes */${file.size}`)
          .header('content-type', 'application/json')
          .send({ error: 'Range not satisfiable', statusCode: 416 });
      }
      const partial = range.kind === 'partial' ? range : undefined;
      const length = partial ? partial.end - partial.start + 1 : file.size;
      reply.status(partial ? 206 : 200).header('content-length', String(length));
      if (partial) {
        reply.header('content-range', `bytes ${partial.start}-${partial.end}/${file.size}`);
      }
      if (req.method === 'HEAD') return reply.send();

      const body = await api.deps.storage.get(file.storageKey, partial);
      if (!body) {
        req.log.error({ fileId, storageKey: file.storageKey }, 'file row without its blob');
        reply.removeHeader('content-length');
        reply.removeHeader('content-range');
        return reply.status(500).send({ error: 'Internal server error', statusCode: 500 });
      }
      return reply.send(body);
    },
  });
}

function matches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t === etag || t === `W/${etag}`;
  });
}
