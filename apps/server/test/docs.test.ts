import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { appRouter } from '@smartspace/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './harness';

// biome-ignore lint/suspicious/noExplicitAny: assertions walk a plain JSON document.
type Json = Record<string, any>;

interface ProcedureDef {
  type: 'query' | 'mutation' | 'subscription';
  inputs: unknown[];
  meta?: { auth?: unknown };
}

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

/** Read from the router itself: a procedure added tomorrow is checked here too. */
const procedures = Object.entries(
  appRouter._def.procedures as unknown as Record<string, { _def: ProcedureDef }>,
).map(([path, p]) => ({ path, ...p._def }));

describe('GET /docs/openapi.json', () => {
  let doc: Json;
  beforeAll(async () => {
    const res = await fetch(`${server.origin}/docs/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('cache-control')).toMatch(/max-age=\d+/);
    doc = (await res.json()) as Json;
  });

  it('is public and OpenAPI 3.1', () => {
    expect(doc.openapi).toBe('3.1.0');
  });

  it('documents every procedure of the router with its kind, auth level and input', () => {
    expect(procedures.length).toBeGreaterThan(30);
    for (const p of procedures) {
      const item = doc.paths[`/trpc/${p.path}`];
      expect(item, `${p.path} is missing from /docs`).toBeDefined();
      const op = item[p.type === 'mutation' ? 'post' : 'get'];
      expect(op, p.path).toMatchObject({ 'x-trpc-path': p.path, 'x-trpc-kind': p.type });
      expect(op['x-trpc-auth'], `${p.path} has no auth level`).toBeTruthy();
      expect(op['x-trpc-auth']).toEqual(p.meta?.auth);
      if (p.inputs.length > 0) {
        const schema =
          op.requestBody?.content?.['application/json']?.schema ??
          op.requestBody?.content?.['multipart/form-data']?.schema ??
          op.parameters?.[0]?.content?.['application/json']?.schema;
        expect(schema, `${p.path} has no input schema`).toBeTypeOf('object');
      }
    }
    expect(Object.keys(doc.paths)).toHaveLength(procedures.length);
  });

  it('marks project-scoped procedures with their minimum role', () => {
    expect(doc.paths['/trpc/projects.delete'].post['x-trpc-auth']).toEqual({ project: 'owner' });
    expect(doc.paths['/trpc/auth.login'].post['x-trpc-auth']).toBe('public');
  });
});

describe('GET /docs', () => {
  let res: Response;
  let html: string;
  beforeAll(async () => {
    res = await fetch(`${server.origin}/docs`);
    html = await res.text();
  });

  it('is a public HTML page, briefly cacheable, that refuses other hosts', () => {
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('cache-control')).toBe('public, max-age=300');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
  });

  it('lists every procedure, even without JavaScript', () => {
    for (const p of procedures) expect(html).toContain(`<code>${p.path}</code>`);
  });

  it('loads its scripts and styles from this server only, and they answer 200', async () => {
    const urls = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] as string);
    expect(urls.filter((u) => u.endsWith('.js') || u.includes('.js?'))).toHaveLength(2);
    expect(urls.some((u) => u.includes('.css'))).toBe(true);
    for (const url of urls) {
      expect(url, 'same-origin path').toMatch(/^\/[^/]/);
      const asset = await fetch(`${server.origin}${url}`);
      expect(asset.status, url).toBe(200);
      const text = await asset.text();
      if (url.includes('init.js')) {
        expect(text).toContain("url: '/docs/openapi.json'");
        expect(text).toContain('validatorUrl: null');
        expect(text).not.toMatch(/https?:\/\//);
      }
    }
    expect(html).not.toMatch(/(?:src|href)="(?:https?:)?\/\//);
  });

  it('serves the Swagger UI bundle byte for byte, compressed when the client accepts it', async () => {
    const dir = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
    const expected = await readFile(join(dir, 'swagger-ui-bundle.js'));
    const [, path] = /src="(\/docs\/assets\/swagger-ui-bundle\.js[^"]*)"/.exec(html) ?? [];
    expect(path).toBeDefined();
    const plain = await server.app.inject({ method: 'GET', url: path as string });
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.rawPayload.equals(expected)).toBe(true);
    const gzipped = await server.app.inject({
      method: 'GET',
      url: path as string,
      headers: { 'accept-encoding': 'gzip' },
    });
    expect(gzipped.headers['content-encoding']).toBe('gzip');
    expect(gzipped.rawPayload.length).toBeLessThan(expected.length / 2);
    expect(gzipped.headers['cache-control']).toMatch(/max-age=\d+/);
  });

  it('serves nothing else from node_modules', async () => {
    for (const name of ['package.json', '..%2F..%2Fpackage.json', 'constructor', 'index.html']) {
      const r = await fetch(`${server.origin}/docs/assets/${name}`);
      expect(r.status, name).toBe(404);
    }
  });
});
