import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

/**
 * Serves the web app (apps/web/dist) from the API's origin, so the browser needs no CORS and
 * the session's tokens never cross origins. Only the files that exist at start-up and the
 * app's own routes are served: `/trpc`, `/docs`, `/files`, `/health` and `/ready` keep their
 * handlers, and any other unknown path still gets the API's 404.
 */
export interface WebPluginOptions {
  /** The built app; defaults to apps/web/dist beside this package. */
  root?: string;
}

export const DEFAULT_WEB_ROOT = fileURLToPath(new URL('../../../web/dist', import.meta.url));

/** Hashed file names change with their content: cache them forever. */
const ASSET_CACHE = 'public, max-age=31536000, immutable';
/** index.html names the current assets: always revalidate it. */
const PAGE_CACHE = 'no-cache';

/** Client-side routes that a reload or a shared link may land on (see apps/web/src/App.tsx). */
export const APP_ROUTES = [
  '/',
  '/sign-in',
  '/register',
  '/forgot-password',
  '/reset-password',
  '/account',
  '/help',
  '/help/*',
  '/admin',
  '/admin/*',
  '/projects',
  '/projects/*',
];

export async function webPlugin(app: FastifyInstance, opts: WebPluginOptions) {
  const root = opts.root ?? DEFAULT_WEB_ROOT;
  const indexPath = join(root, 'index.html');
  if (!existsSync(indexPath)) {
    app.log.warn(
      { root },
      'web app not built: serving the API only (run `pnpm --filter @smartspace/web build`)',
    );
    return;
  }
  await app.register(fastifyStatic, {
    root,
    prefix: '/',
    // Routes for the files present now, no catch-all: unknown paths fall through to the 404.
    wildcard: false,
    index: false,
    decorateReply: false,
    setHeaders: (reply, path) => {
      reply.header('cache-control', path.includes('/assets/') ? ASSET_CACHE : PAGE_CACHE);
    },
  });
  // Read once, like the asset routes above: a rebuild is served after a restart.
  const html = await readFile(indexPath, 'utf8');
  for (const url of APP_ROUTES) {
    app.get(url, async (_req, reply) =>
      reply.header('cache-control', PAGE_CACHE).type('text/html; charset=utf-8').send(html),
    );
  }
}
