import SwaggerParser from '@apidevtools/swagger-parser';
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { appErrorCodes } from '../lib/errors';
import { appRouter } from '../router';
import {
  adminProcedure,
  authedProcedure,
  projectProcedure,
  publicProcedure,
  resourceProcedure,
  router,
} from '../trpc';
import { openApiDocument } from './openapi';
import { describeProcedures } from './procedures';

// biome-ignore lint/suspicious/noExplicitAny: assertions walk a plain JSON document.
type Json = Record<string, any>;

const Tree: z.ZodType<{ name: string; children: unknown[] }> = z.object({
  name: z.string(),
  get children() {
    return z.array(Tree);
  },
});

const sample = router({
  ping: publicProcedure.query(() => 'pong'),
  me: authedProcedure.query(() => null),
  users: router({ purge: adminProcedure.mutation(() => null) }),
  projects: router({
    rename: projectProcedure('admin')
      .meta({ description: 'Renames the project.' })
      .input(z.object({ name: z.string().min(1) }))
      .output(z.object({ ok: z.literal(true) }))
      .mutation(() => ({ ok: true as const })),
    watch: resourceProcedure('viewer', {
      input: z.object({ threadId: z.uuid() }),
      notFound: 'chat.conversation_not_found',
      id: 'threadId',
      owner: { name: 'thread', project: () => sql`null::uuid` },
    })
      .input(z.object({ lastEventId: z.string().optional() }))
      .subscription(async function* () {}),
  }),
  search: publicProcedure
    .input(
      z.object({
        from: z.iso.datetime().transform((s) => new Date(s)),
        tree: Tree,
        filter: z.json(),
        limit: z.number().int().default(20),
      }),
    )
    .query(() => []),
  upload: authedProcedure.input(z.instanceof(FormData)).mutation(() => null),
});

function operations(doc: Json): Json[] {
  return Object.values(doc.paths as Json).flatMap((item: Json) => Object.values(item));
}

describe('auth level comes from the builder the procedure was made with', () => {
  const byPath = new Map(describeProcedures(sample).map((p) => [p.path, p]));

  it('public, signed-in user and platform admin', () => {
    expect(byPath.get('ping')?.auth).toBe('public');
    expect(byPath.get('me')?.auth).toBe('user');
    expect(byPath.get('users.purge')?.auth).toBe('admin');
  });

  it("projectProcedure('admin') reports { project: 'admin' }, and meta added later keeps it", () => {
    expect(byPath.get('projects.rename')).toMatchObject({
      kind: 'mutation',
      auth: { project: 'admin' },
      description: 'Renames the project.',
    });
  });

  it('resourceProcedure reports its minimum role too', () => {
    expect(byPath.get('projects.watch')).toMatchObject({
      kind: 'subscription',
      auth: { project: 'viewer' },
    });
  });

  it('every procedure of the app router has one, matching API.md on samples', () => {
    const docs = describeProcedures(appRouter);
    expect(docs.length).toBe(Object.keys(appRouter._def.procedures).length);
    for (const p of docs) expect(p.auth, p.path).not.toBeNull();
    const auth = new Map(docs.map((p) => [p.path, p.auth]));
    expect(auth.get('auth.login')).toBe('public');
    expect(auth.get('users.me')).toBe('user');
    expect(auth.get('users.setRole')).toBe('admin');
    expect(auth.get('projects.get')).toEqual({ project: 'viewer' });
    expect(auth.get('projects.members.add')).toEqual({ project: 'admin' });
    expect(auth.get('projects.delete')).toEqual({ project: 'owner' });
    expect(auth.get('chat.send')).toEqual({ project: 'member' });
    expect(auth.get('audit.list')).toEqual({ project: 'admin' });
  });
});

describe('input and output schemas', () => {
  const doc = openApiDocument(sample) as Json;

  it("merges a procedure's chained inputs into one object, in the request body of a mutation", () => {
    const op = doc.paths['/trpc/projects.rename'].post;
    expect(op.requestBody.content['application/json'].schema).toMatchObject({
      type: 'object',
      properties: { projectId: { type: 'string', format: 'uuid' }, name: { minLength: 1 } },
      required: ['projectId', 'name'],
    });
  });

  it('documents what the client sends: before transforms, defaults optional', () => {
    const op = doc.paths['/trpc/search'].get;
    const [param] = op.parameters;
    expect(param).toMatchObject({ name: 'input', in: 'query', required: true });
    const schema = param.content['application/json'].schema;
    expect(schema.properties.from).toMatchObject({ type: 'string', format: 'date-time' });
    expect(schema.required).not.toContain('limit');
  });

  it('moves recursive sub-schemas to components so every $ref resolves', async () => {
    expect(Object.keys(doc.components.schemas).some((k) => k.startsWith('search.input'))).toBe(
      true,
    );
    expect(JSON.stringify(doc)).not.toContain('#/$defs/');
    // Throws on an invalid OpenAPI 3.1 document or a $ref that points nowhere.
    await SwaggerParser.validate(structuredClone(doc) as never);
  });

  it('declared outputs appear in the success envelope; others name their TypeScript type', () => {
    const rename = doc.paths['/trpc/projects.rename'].post.responses['200'];
    expect(rename.content['application/json'].schema.properties.result.properties.data).toEqual({
      type: 'object',
      properties: { ok: { type: 'boolean', const: true } },
      required: ['ok'],
      additionalProperties: false,
    });
    expect(doc.paths['/trpc/me'].get.description).toContain("RouterOutputs['me']");
  });

  it('FormData inputs are multipart uploads; no input means no body or parameter', () => {
    expect(doc.paths['/trpc/upload'].post.requestBody.content).toHaveProperty(
      'multipart/form-data',
    );
    expect(doc.paths['/trpc/users.purge'].post.requestBody).toBeUndefined();
    expect(doc.paths['/trpc/ping'].get.parameters).toBeUndefined();
  });

  it('public procedures need no token; the others list the errors their level can raise', () => {
    expect(doc.paths['/trpc/ping'].get.security).toEqual([]);
    expect(Object.keys(doc.paths['/trpc/ping'].get.responses)).not.toContain('401');
    const rename = doc.paths['/trpc/projects.rename'].post;
    expect(rename.security).toEqual([{ bearerAuth: [] }]);
    expect(Object.keys(rename.responses)).toEqual(
      expect.arrayContaining(['400', '401', '403', '404', '429', 'default']),
    );
  });
});

describe('the app router as a whole', () => {
  it('is a valid OpenAPI 3.1 document listing every procedure once', async () => {
    const doc = openApiDocument(appRouter) as Json;
    const paths = Object.keys(appRouter._def.procedures).map((p) => `/trpc/${p}`);
    expect(Object.keys(doc.paths).sort()).toEqual(paths.sort());
    expect(new Set(operations(doc).map((op) => op.operationId)).size).toBe(paths.length);
    await SwaggerParser.validate(structuredClone(doc) as never);
  });

  it('lists every app error code with its HTTP status', () => {
    const intro = (openApiDocument(appRouter).info as Json).description as string;
    for (const code of Object.keys(appErrorCodes)) expect(intro).toContain(`| \`${code}\` |`);
    expect(intro).toContain('| `auth.email_taken` | CONFLICT | 409 |');
  });
});
