import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { describeAuth, type OpenApiDocument, openApiDocument } from '@smartspace/api';
import type { AnyTRPCRouter } from '@trpc/server';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

const gzip = promisify(gzipCallback);

/**
 * GET /docs: the API reference, generated from the router itself (so it cannot drift) and
 * rendered by Swagger UI. Everything the page loads comes from this server: the machine
 * may be offline, and the page's CSP refuses other hosts.
 */
export interface DocsPluginOptions {
  router: AnyTRPCRouter;
  maxBatchSize: number;
}

const swaggerDir = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

const PAGE_CACHE = 'public, max-age=300';
// Asset URLs carry the Swagger UI version, so an upgrade is never served stale.
const ASSET_CACHE = 'public, max-age=86400';

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // Swagger UI (React) sets style attributes and embeds its icons as data: URIs.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

// Started from the page's own script so the CSP needs no inline script.
const INIT_JS = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: '/docs/openapi.json',
    dom_id: '#swagger-ui',
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
    deepLinking: true,
    filter: true,
    // The default validator badge calls a public service; this page stays offline.
    validatorUrl: null,
  });
});
`;

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );

function page(doc: OpenApiDocument, version: string): string {
  const rows = Object.values(doc.paths).map((item) => {
    const op = Object.values(item)[0] as Record<string, unknown>;
    const auth = describeAuth(op['x-trpc-auth'] as Parameters<typeof describeAuth>[0]);
    return `<tr><td><code>${escapeHtml(String(op['x-trpc-path']))}</code></td><td>${escapeHtml(
      String(op['x-trpc-kind']),
    )}</td><td>${escapeHtml(auth)}</td></tr>`;
  });
  const title = escapeHtml(String((doc.info as { title: string }).title));
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} reference</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css?v=${version}">
</head>
<body>
<div id="swagger-ui"></div>
<noscript>
<h1>${title}</h1>
<p>The interactive reference needs JavaScript. The full description (inputs, errors, auth) is
<a href="/docs/openapi.json">/docs/openapi.json</a> (OpenAPI 3.1).</p>
<table>
<thead><tr><th>procedure</th><th>kind</th><th>who</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
</noscript>
<script src="/docs/assets/swagger-ui-bundle.js?v=${version}"></script>
<script src="/docs/assets/init.js?v=${version}"></script>
</body>
</html>
`;
}

interface Asset {
  type: string;
  load: () => Promise<Buffer>;
}

const assets: Record<string, Asset> = {
  'swagger-ui.css': {
    type: 'text/css; charset=utf-8',
    load: () => readFile(join(swaggerDir, 'swagger-ui.css')),
  },
  'swagger-ui-bundle.js': {
    type: 'text/javascript; charset=utf-8',
    load: () => readFile(join(swaggerDir, 'swagger-ui-bundle.js')),
  },
  'init.js': {
    type: 'text/javascript; charset=utf-8',
    load: async () => Buffer.from(INIT_JS),
  },
};

/** Built on first use and kept: the router never changes while the process runs. */
function once<T>(make: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => {
    value ??= make().catch((err: unknown) => {
      value = undefined;
      throw err;
    });
    return value;
  };
}

interface Body {
  plain: Buffer;
  gzipped: Buffer;
}

const compressed = (make: () => Promise<Buffer>) =>
  once(async (): Promise<Body> => {
    const plain = await make();
    return { plain, gzipped: await gzip(plain) };
  });

function send(req: FastifyRequest, reply: FastifyReply, body: Body, type: string, cache: string) {
  const acceptsGzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  reply
    .header('content-type', type)
    .header('cache-control', cache)
    .header('vary', 'accept-encoding')
    .header('x-content-type-options', 'nosniff');
  if (acceptsGzip) reply.header('content-encoding', 'gzip');
  return reply.send(acceptsGzip ? body.gzipped : body.plain);
}

export async function docsPlugin(app: FastifyInstance, opts: DocsPluginOptions) {
  const { version } = JSON.parse(await readFile(join(swaggerDir, 'package.json'), 'utf8')) as {
    version: string;
  };
  const document = once(async () =>
    openApiDocument(opts.router, { maxBatchSize: opts.maxBatchSize }),
  );
  const spec = compressed(async () => Buffer.from(JSON.stringify(await document())));
  const html = compressed(async () => Buffer.from(page(await document(), version)));
  const files = new Map(
    Object.entries(assets).map(([name, asset]) => [
      name,
      { type: asset.type, body: compressed(asset.load) },
    ]),
  );

  app.get('/docs', async (req, reply) => {
    reply.header('content-security-policy', CSP).header('referrer-policy', 'no-referrer');
    return send(req, reply, await html(), 'text/html; charset=utf-8', PAGE_CACHE);
  });

  app.get('/docs/openapi.json', async (req, reply) =>
    send(req, reply, await spec(), 'application/json; charset=utf-8', PAGE_CACHE),
  );

  app.get('/docs/assets/:file', async (req, reply) => {
    const file = files.get((req.params as { file: string }).file);
    if (!file) return reply.status(404).send({ error: 'Not found', statusCode: 404 });
    return send(req, reply, await file.body(), file.type, ASSET_CACHE);
  });
}
