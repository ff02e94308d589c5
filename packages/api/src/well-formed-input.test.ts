import { TRPCError } from '@trpc/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { appRouter } from './router';
import { createTestApi, type TestApi } from './testing';

/**
 * Text PostgreSQL cannot store is refused as bad input by every
 * procedure (the list comes from the router, so a new procedure is covered), and date inputs
 * are bounded to what it can. End to end over HTTP and WebSocket: apps/server fuzz.test.ts.
 */

let t: TestApi;
let token: string;
let projectId: string;
beforeAll(async () => {
  t = await createTestApi();
  const admin = await t.signUp('Input Admin');
  token = admin.accessToken;
  projectId = (await t.caller(token).projects.create({ name: 'Inputs' })).id;
});
afterAll(() => t.close());

type AnyCall = (input: unknown) => Promise<unknown>;

function callAt(path: string): AnyCall {
  let node: unknown = t.caller(token);
  for (const key of path.split('.')) node = (node as Record<string, unknown>)[key];
  return node as AnyCall;
}

/** The refusal tRPC reports: BAD_REQUEST caused by zod issues; their first path keys. */
async function refusedFields(p: Promise<unknown>): Promise<string[]> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TRPCError);
  const e = err as TRPCError;
  expect(e.code).toBe('BAD_REQUEST');
  expect(e.cause).toBeInstanceOf(z.core.$ZodError);
  return (e.cause as z.core.$ZodError).issues.map((i) => String(i.path[0]));
}

describe('bad text, refused for every procedure', () => {
  const paths = Object.keys(appRouter._def.procedures).sort();

  it.each(paths)(
    '%s: a NUL or a lone surrogate anywhere is BAD_REQUEST naming the field',
    async (path) => {
      // Real ids, so only the bad text stands between the call and its service.
      const input = { projectId, note: 'a\u0000b', nested: { list: ['x\ud800'] } };
      expect((await refusedFields(callAt(path)(input))).sort()).toEqual(['nested', 'note']);
    },
  );

  it('even where the text would be valid for the field (a name, a search query)', async () => {
    const c = t.caller(token);
    expect(await refusedFields(c.projects.create({ name: 'a\u0000b' }))).toEqual(['name']);
    expect(await refusedFields(c.users.list({ query: 'x\udfff' }))).toEqual(['query']);
    expect(
      await refusedFields(
        c.agents.create({
          projectId,
          name: 'n',
          instructions: 'i',
          model: 'mock-echo',
          outputSchema: { type: 'object', properties: { 'k\u0000': { type: 'string' } } },
        }),
      ),
    ).toEqual(['outputSchema']);
  });
});

describe('dates within years 0001–9999', () => {
  // projectId is set once beforeAll has run.
  const range = () => ({ projectId, groupBy: 'day' as const });

  it('usage.summary refuses dates PostgreSQL cannot hold, naming the field', async () => {
    const c = t.caller(token);
    const to = new Date().toISOString();
    expect(
      await refusedFields(c.usage.summary({ ...range(), from: '9999-12-31T23:59:59-23:59', to })),
    ).toEqual(['from']);
    expect(
      await refusedFields(
        c.usage.summary({ ...range(), from: '0000-01-01T00:00:00Z', to: '0000-06-01T00:00:00Z' }),
      ),
    ).toEqual(['from', 'to']);
  });

  it('usage.summary reports a malformed date as that field, not as a crash in a refinement', async () => {
    const c = t.caller(token);
    const to = new Date().toISOString();
    expect(await refusedFields(c.usage.summary({ ...range(), from: 'NaN', to }))).toEqual(['from']);
    const ok = await c.usage.summary({
      ...range(),
      from: '2024-01-01T00:00:00Z',
      to: '2024-02-01T00:00:00Z',
    });
    expect(ok).toBeDefined();
  });

  it('audit.list refuses them too', async () => {
    const c = t.caller(token);
    expect(await refusedFields(c.audit.list({ from: '0000-01-01T00:00:00Z' }))).toEqual(['from']);
    expect(await refusedFields(c.audit.list({ to: '9999-12-31T23:59:59-01:00' }))).toEqual(['to']);
    const page = await c.audit.list({ from: '0001-01-01T00:00:00Z', to: '9999-12-31T23:59:59Z' });
    expect(page.items.length).toBeGreaterThan(0);
  });
});
