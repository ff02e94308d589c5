/**
 * Walks every procedure of the router (read from the router itself, so a new one is walked
 * without touching this file) with malformed inputs, over HTTP and over WebSocket, as a
 * signed-in platform admin who owns the project: wrong types, huge and deeply nested values,
 * NUL bytes, lone surrogates, extreme numbers and dates, extra keys. Real ids sit in the
 * otherwise-bad inputs so that the checks behind validation run too. Every answer must be a
 * 4xx or a success, never a 5xx or silence; input that the procedure's own parsers or the
 * shared raw-input rule refuse must be a 400 `request.invalid` whose
 * `fieldErrors` name the field.
 */
import { appRouter, describeProcedures, type ProcedureDoc } from '@smartspace/api';
import { closeClient } from '@smartspace/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpCall, httpForm, type Kind, type Outcome, RpcSocket, wsSubscribe } from './fuzz-calls';
import { createFixtures, FIXTURE_PASSWORD, type Fixtures } from './fuzz-fixtures';
import { asParsed, baseInput, type Limits, type Mutant, mutants, toJsonText } from './fuzz-inputs';
import { startTestServer, type TestServer } from './harness';

let server: TestServer;
let fx: Fixtures;
const docs = describeProcedures(appRouter);

type Parser = { safeParseAsync(v: unknown): Promise<{ success: boolean }> };
const procedures = appRouter._def.procedures as unknown as Record<
  string,
  { _def: { inputs: Parser[] } }
>;

/** Whether the procedure's own parsers accept what the server receives, as tRPC runs them. */
async function parsesLocally(path: string, received: unknown): Promise<boolean> {
  try {
    for (const parser of procedures[path]?._def.inputs ?? []) {
      if (!(await parser.safeParseAsync(received)).success) return false;
    }
    return true;
  } catch {
    // A parser that throws instead of reporting issues refuses the input all the same.
    return false;
  }
}

beforeAll(async () => {
  server = await startTestServer({ MCP_ALLOW_HTTP_LOOPBACK: 'true' });
  fx = await createFixtures(server.origin);
});
afterAll(async () => {
  await closeClient(fx.admin.client);
  await server.close();
  await fx.mcp.close();
});

function baseOf(doc: ProcedureDoc): unknown {
  const base = baseInput(doc.input, fx.ids);
  const own = fx.victims[doc.path];
  return own && base && typeof base === 'object' ? { ...base, ...own } : base;
}

interface Check {
  mutant: Mutant;
  outcome: Outcome;
  /** The procedure's own parsers refuse the input as received. */
  invalid: boolean;
  /** URL-encoded size of the input. */
  size: number;
}

/** Why an answer is wrong, or null. */
function problemWith({ mutant: m, outcome: o, invalid, size }: Check): string | null {
  if (o.status >= 500 || o.status === 0) return `answered ${o.status} ${o.appCode} ${o.message}`;
  // URL and body limits refuse an oversized request before any procedure sees it.
  if ((o.status === 413 || o.status === 431) && size > 8_000) return null;
  if (!(m.mustRefuse || invalid)) return null;
  if (o.status !== 400 || o.appCode !== 'request.invalid') {
    return `expected 400 request.invalid, got ${o.status} ${o.appCode} ${o.message}`;
  }
  if (!o.fieldErrors) return 'no fieldErrors';
  if (m.field !== null && !o.fieldErrors[m.field]?.length) {
    return `fieldErrors do not name ${m.field}: ${JSON.stringify(o.fieldErrors)}`;
  }
  return null;
}

interface Transport {
  limits(kind: Kind): Limits;
  call(doc: ProcedureDoc, input: unknown): Promise<Outcome>;
  /** What the server receives for `input` (a typed client re-serialises it). */
  received(doc: ProcedureDoc, input: unknown): unknown;
  /** Overrides the check for procedures this transport refuses whatever their input. */
  check?(doc: ProcedureDoc, c: Check): string | null | undefined;
}

interface Tally {
  problems: string[];
  /** Answers by status and calls refused for want of a session: proves the calls got past
   * sign-in into validation and the services. */
  statuses: Record<number, number>;
  signedOut: number;
  calls: number;
}

const SIGNED_OUT = new Set(['auth.unauthenticated', 'auth.session_ended', 'auth.token_invalid']);

async function walkOne(doc: ProcedureDoc, t: Transport, tally: Tally): Promise<void> {
  const all = mutants(baseOf(doc), doc.input, t.limits(doc.kind), fx.ids.projectId ?? '');
  const planned = await Promise.all(
    all.map(async (mutant) => ({
      mutant,
      invalid: !(await parsesLocally(doc.path, t.received(doc, mutant.input))),
    })),
  );
  // Refused inputs first: one that gets through may delete the very fixture it names.
  const refusedFirst = (p: { mutant: Mutant; invalid: boolean }) =>
    p.invalid || p.mutant.mustRefuse ? 0 : 1;
  planned.sort((a, b) => refusedFirst(a) - refusedFirst(b));
  for (const { mutant, invalid } of planned) {
    const outcome = await t.call(doc, mutant.input);
    const size = encodeURIComponent(toJsonText(mutant.input) ?? '').length;
    const c = { mutant, outcome, invalid, size };
    const own = t.check?.(doc, c);
    const problem = own === undefined ? problemWith(c) : own;
    if (problem) tally.problems.push(`${doc.path} [${mutant.label}]: ${problem}`);
    tally.statuses[outcome.status] = (tally.statuses[outcome.status] ?? 0) + 1;
    if (SIGNED_OUT.has(outcome.appCode ?? '')) tally.signedOut++;
    tally.calls++;
  }
}

/** Walks all procedures, a few at a time. */
async function walk(t: Transport): Promise<Tally> {
  const tally: Tally = { problems: [], statuses: {}, signedOut: 0, calls: 0 };
  const queue = [...docs];
  const worker = async () => {
    for (let doc = queue.shift(); doc; doc = queue.shift()) await walkOne(doc, t, tally);
  };
  // Calls mostly wait on the database: a few procedures at a time keep both cores busy.
  await Promise.all(Array.from({ length: 8 }, worker));
  tally.problems.sort();
  return tally;
}

/** The walk reached past sign-in and into services, and found nothing wrong. */
function expectSound(tally: Tally) {
  expect(tally.calls).toBeGreaterThan(docs.length * 10);
  expect(tally.signedOut).toBe(0);
  expect(tally.statuses[200] ?? 0).toBeGreaterThan(docs.length);
  expect(tally.problems).toEqual([]);
}

/** auth.logoutAll ends every session of its caller: each call gets a fresh one of its own. */
async function freshLogoutToken(): Promise<string> {
  const res = await fetch(`${server.origin}/trpc/auth.login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: fx.logoutEmail, password: FIXTURE_PASSWORD }),
  });
  const body = (await res.json()) as { result: { data: { accessToken: string } } };
  return body.result.data.accessToken;
}

const tokenFor = async (path: string) =>
  path === 'auth.logoutAll' ? freshLogoutToken() : fx.admin.session.accessToken;

describe('every procedure, malformed input', () => {
  it('has a base input that each procedure’s own parsers accept', async () => {
    const refused: string[] = [];
    for (const doc of docs) {
      // files.upload takes multipart form data: its fields are walked in the last test below.
      if (doc.inputKind === 'form-data') continue;
      if (!(await parsesLocally(doc.path, baseOf(doc)))) refused.push(doc.path);
    }
    expect(refused).toEqual([]);
  });

  it('over HTTP: never a 5xx, refused input names its field', async () => {
    const tally = await walk({
      // Queries carry their input in the URL, which Node caps at 16 KiB.
      limits: (kind) =>
        kind === 'mutation'
          ? { hugeString: 120_000, depth: 100_000 }
          : { hugeString: 8_000, depth: 1_000 },
      call: async (doc, input) =>
        httpCall(server.origin, await tokenFor(doc.path), doc.kind, doc.path, input),
      received: (_doc, input) => asParsed(input),
      // Subscriptions are served over WebSocket only: over HTTP every
      // call of one is refused before its input is read. They are walked over WebSocket below.
      check: (doc, { outcome: o }) => {
        if (doc.kind !== 'subscription') return undefined;
        if (o.status === 405 && o.appCode === 'request.method_not_supported') return null;
        return `expected 405 request.method_not_supported, got ${o.status} ${o.appCode}`;
      },
    });
    expectSound(tally);
  }, 90_000);

  it('over WebSocket: never a 5xx, subscriptions fail instead of hanging', async () => {
    const socket = new RpcSocket(server.origin, fx.admin.session.accessToken);
    try {
      const tally = await walk({
        // Frames stay under WS_MAX_PAYLOAD_BYTES, past which the socket itself is closed; the
        // typed client serialises subscription input with JSON.stringify, which has a depth
        // limit of its own.
        limits: (kind) => ({ hugeString: 60_000, depth: kind === 'subscription' ? 2_000 : 12_000 }),
        call: async (doc, input) => {
          if (doc.kind === 'subscription') return wsSubscribe(fx.admin.client, doc.path, input);
          if (doc.path !== 'auth.logoutAll') return socket.call(doc.kind, doc.path, input);
          const own = new RpcSocket(server.origin, await tokenFor(doc.path));
          try {
            return await own.call(doc.kind, doc.path, input);
          } finally {
            own.close();
          }
        },
        received: (doc, input) => {
          const parsed = asParsed(input);
          if (doc.kind !== 'subscription' || parsed === undefined) return parsed;
          return JSON.parse(JSON.stringify(parsed));
        },
        // Ending its own session closes the caller's socket (4001), which may beat the answer.
        check: (doc, { outcome: o, invalid, mutant }) => {
          if (doc.path !== 'auth.logoutAll' || invalid || mutant.mustRefuse) return undefined;
          return o.status === 200 || o.message === 'socket closed with 4001' ? null : undefined;
        },
      });
      expectSound(tally);
    } finally {
      socket.close();
    }
  }, 90_000);
});

interface FormCase {
  label: string;
  fields: [string, string | Blob, string?][];
  /** The field that must be named as refused; undefined when any non-5xx answer will do. */
  refused?: string;
}

function formCases(projectId: string): FormCase[] {
  const text = new Blob(['fuzz text']);
  const file: [string, Blob, string] = ['file', text, 'f.txt'];
  const project: [string, string] = ['projectId', projectId];
  return [
    { label: 'projectId: NUL', fields: [['projectId', 'a\u0000b'], file], refused: 'projectId' },
    {
      label: 'projectId: NUL appended',
      fields: [['projectId', `${projectId}\u0000`], file],
      refused: 'projectId',
    },
    { label: 'projectId: empty', fields: [['projectId', ''], file], refused: 'projectId' },
    {
      label: 'projectId: huge',
      fields: [['projectId', 'x'.repeat(100_000)], file],
      refused: 'projectId',
    },
    { label: 'projectId: unknown', fields: [['projectId', fx.ids.unknownId ?? ''], file] },
    { label: 'projectId: missing', fields: [file], refused: 'projectId' },
    // Names are sanitised rather than refused (files/names.ts strips control characters).
    { label: 'file name: NUL', fields: [project, ['file', text, 'a\u0000b.txt']] },
    // Multipart text is UTF-8: a lone surrogate arrives as U+FFFD, which is well-formed.
    { label: 'file name: lone surrogate', fields: [project, ['file', text, 'x\ud800.txt']] },
    { label: 'file name: huge', fields: [project, ['file', text, `${'x'.repeat(5_000)}.txt`]] },
    { label: 'file name: a path', fields: [project, ['file', text, '../../etc/passwd']] },
    { label: 'file: missing', fields: [project], refused: 'file' },
    { label: 'file: a plain field', fields: [project, ['file', 'not a file']], refused: 'file' },
    {
      label: 'file: NUL bytes in text',
      fields: [project, ['file', new Blob(['a\u0000b']), 'n.txt']],
    },
    {
      label: 'file: invalid UTF-8 in text',
      fields: [project, ['file', new Blob([new Uint8Array([0x61, 0xff, 0xfe, 0xc3])]), 'u.txt']],
    },
    {
      label: 'extra field: NUL value',
      fields: [project, file, ['extra', 'a\u0000b']],
      refused: 'extra',
    },
    {
      label: 'extra field: NUL name',
      fields: [project, file, ['e\u0000', 'v']],
      refused: 'e\u0000',
    },
  ];
}

describe('form-data procedures, malformed multipart over HTTP', () => {
  // A WebSocket carries JSON only: over it these get the JSON walk above, all refused.
  it('are exactly the ones walked here', () => {
    const forms = docs.filter((d) => d.inputKind === 'form-data').map((d) => d.path);
    expect(forms).toEqual(['files.upload']);
  });

  it('files.upload: never a 5xx, NUL in a form field is refused naming it', async () => {
    const problems: string[] = [];
    for (const c of formCases(fx.ids.projectId ?? '')) {
      const form = new FormData();
      for (const [name, value, fileName] of c.fields) {
        if (value instanceof Blob) form.append(name, value, fileName);
        else form.append(name, value);
      }
      const o = await httpForm(server.origin, fx.admin.session.accessToken, 'files.upload', form);
      const refusedRight =
        o.status === 400 && o.appCode === 'request.invalid' && !!o.fieldErrors?.[c.refused ?? ''];
      if (o.status >= 500 || o.status === 0) problems.push(`${c.label}: ${o.status} ${o.message}`);
      else if (c.refused !== undefined && !refusedRight) {
        problems.push(`${c.label}: ${o.status} ${o.appCode} ${JSON.stringify(o.fieldErrors)}`);
      }
    }
    expect(problems).toEqual([]);
  });
});
