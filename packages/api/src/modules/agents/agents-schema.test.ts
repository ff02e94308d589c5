import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { TRPCError } from '@trpc/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../lib/errors';
import { createTestApi, type TestApi } from '../../testing';
import { settled } from '../runs/testing';
import {
  compileSchema,
  SCHEMA_CACHE_MAX_CHARS,
  SCHEMA_CACHE_MAX_ENTRIES,
  SCHEMA_MAX_CHARS,
  schemaCacheStats,
  schemaProblem,
} from './schema';
import { linearRegExpEngine, PATTERN_PROGRAM_BUDGET } from './schema-pattern';

let t: TestApi;
beforeAll(async () => {
  // Room for a long final answer, to show the answer's own parsing is linear too.
  t = await createTestApi({ RUN_MAX_OUTPUT_TOKENS: '30000' });
});
afterAll(() => t.close());

async function project(name: string) {
  const owner = await t.signUp(name);
  const c = t.caller(owner.accessToken);
  const { id: projectId } = await c.projects.create({ name });
  return { c, projectId };
}

const base = { instructions: 'Answer.', model: 'mock-echo' };

/** The app code and message of a refused call. */
async function refusal(p: Promise<unknown>): Promise<{ appCode: string; message: string }> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof TRPCError && e.cause instanceof AppError)) throw e;
    return { appCode: e.cause.code, message: e.message };
  }
  throw new Error('expected the call to fail');
}

/** Runs `fn` and reports the longest the event loop was kept from turning meanwhile. */
async function loopDelay<T>(fn: () => Promise<T>): Promise<{ result: T; maxDelayMs: number }> {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  try {
    const result = await fn();
    return { result, maxDelayMs: histogram.max / 1e6 };
  } finally {
    histogram.disable();
  }
}

/** The mock model echoes its input: a fenced JSON document in it becomes its answer. */
const fencedJson = (value: unknown) => `\`\`\`json\n${JSON.stringify(value)}\n\`\`\``;

const EVIL = '^(a+)+$';
const evilInput = `${'a'.repeat(30)}!`;

describe('patterns run on a linear-time engine', () => {
  it('a catastrophic-backtracking pattern answers at once, and means what ECMAScript says', () => {
    const validate = compileSchema({ type: 'string', pattern: EVIL });
    const started = performance.now();
    expect(validate(evilInput)).toBe(false);
    expect(validate(`${'a'.repeat(100_000)}!`)).toBe(false);
    expect(validate('a'.repeat(100_000))).toBe(true);
    expect(performance.now() - started).toBeLessThan(1_000);
    const keys = compileSchema({
      type: 'object',
      patternProperties: { [EVIL]: { type: 'number' } },
      additionalProperties: false,
    });
    expect(keys({ [evilInput]: 1 })).toBe(false);
    expect(keys({ aaa: 1 })).toBe(true);
  });

  it('agrees with the native engine on \\s, \\S, `.`, classes, escapes and anchors', () => {
    const chars: string[] = [];
    for (let cp = 0; cp <= 0xffff; cp++) {
      if (cp < 0xd800 || cp > 0xdfff) chars.push(String.fromCharCode(cp));
    }
    chars.push('\u{1F600}', '\u{10FFFF}');
    const engine = linearRegExpEngine();
    for (const pattern of ['^\\s$', '^\\S$', '^[\\S]$', '^[^\\s]$', '^[\\sa]$', '^.$', '^[.]$']) {
      const linear = engine(pattern, 'u');
      const native = new RegExp(pattern, 'u');
      const differ = chars.filter((ch) => linear.test(ch) !== native.test(ch));
      expect({ pattern, differ }).toEqual({ pattern, differ: [] });
    }
    const samples = [
      '',
      'a',
      'x:',
      '[',
      ']',
      'a\n',
      '2024-05-01',
      'ab😀',
      'Ωmega',
      'foo bar',
      '\\',
    ];
    for (const pattern of [
      '[][a]',
      '[^]',
      'x[[:digit:]',
      'a$',
      '^$',
      '\\bfoo\\b',
      '^(?<y>\\d{4})-\\d{2}-\\d{2}$',
      '\\u{1F600}',
      '^\\p{Lu}',
      '[\\u0041-\\u005a]',
      '\\\\',
      '\\cJ',
      '^(?:a|ab)+$',
    ]) {
      const linear = engine(pattern, 'u');
      const native = new RegExp(pattern, 'u');
      for (const s of samples) {
        expect({ pattern, s, matches: linear.test(s) }).toEqual({
          pattern,
          s,
          matches: native.test(s),
        });
      }
    }
  });

  it('refuses, with a reason, what cannot run in linear time or is not ECMAScript', () => {
    const problems = Object.fromEntries(
      [
        '(a)\\1',
        '(?<n>a)\\k<n>',
        '(?=a)b',
        'a(?!b)',
        '(?<=a)b',
        '(?<!a)b',
        '(?i)a',
        '[',
        'a{1001}',
        '^[a-z]{1,1000}$',
      ].map((p) => [p, schemaProblem({ type: 'string', pattern: p })]),
    );
    expect(problems).toEqual({
      '(a)\\1': expect.stringMatching(/backreferences cannot be matched in linear time/),
      '(?<n>a)\\k<n>': expect.stringMatching(/backreferences/),
      '(?=a)b': expect.stringMatching(/lookaround assertions cannot be matched in linear time/),
      'a(?!b)': expect.stringMatching(/lookaround/),
      '(?<=a)b': expect.stringMatching(/lookaround/),
      '(?<!a)b': expect.stringMatching(/lookaround/),
      '(?i)a': expect.stringMatching(/Invalid regular expression/),
      '[': expect.stringMatching(/Invalid regular expression/),
      'a{1001}': expect.stringMatching(/invalid repeat count/),
      '^[a-z]{1,1000}$': expect.stringMatching(/too complex/),
    });
    // Keys of patternProperties are patterns too; the budget covers the schema as a whole.
    expect(schemaProblem({ patternProperties: { '^(?=x)': { type: 'string' } } })).toMatch(
      /lookaround/,
    );
    const third = `^[a-z]{${Math.ceil(PATTERN_PROGRAM_BUDGET / 3)}}`;
    expect(schemaProblem({ type: 'string', pattern: third })).toBeNull();
    const three = [third, `${third}$`, `${third}x`].map((pattern) => ({ pattern }));
    expect(schemaProblem({ type: 'string', allOf: three })).toMatch(/too complex/);
  });

  it('an agent saving a backreference is refused with agents.invalid', async () => {
    const { c, projectId } = await project('Backreference');
    const saved = refusal(
      c.agents.create({
        projectId,
        name: 'Echoer',
        ...base,
        outputSchema: { type: 'string', pattern: '^(a)\\1$' },
      }),
    );
    expect(await saved).toEqual({
      appCode: 'agents.invalid',
      message: expect.stringMatching(
        /^Invalid outputSchema: pattern "\^\(a\)\\1\$" is not supported/,
      ),
    });
  });

  it('a run whose answer meets ^(a+)+$ with 30 a and ! fails validation without stalling', async () => {
    const { c, projectId } = await project('Evil Pattern');
    const agent = await c.agents.create({
      projectId,
      name: 'Echoer',
      ...base,
      outputSchema: { type: 'string', pattern: EVIL },
    });
    const { result: run, maxDelayMs } = await loopDelay(async () => {
      const started = await c.runs.start({ agentId: agent.id, input: fencedJson(evilInput) });
      return settled(c, started.id);
    });
    expect(run).toMatchObject({ status: 'failed', error: { appCode: 'run.output_invalid' } });
    // The first answer was refused for the pattern, and the model told so.
    expect(JSON.stringify(run.steps)).toContain('must match pattern');
    expect(maxDelayMs).toBeLessThan(1_000);
  });

  it('a long unterminated ``` fence in an answer is parsed in linear time', async () => {
    const { c, projectId } = await project('Long Fence');
    const agent = await c.agents.create({
      projectId,
      name: 'Echoer',
      ...base,
      outputSchema: { type: 'string' },
    });
    const { result: run, maxDelayMs } = await loopDelay(async () => {
      const input = `\`\`\`json${' '.repeat(99_000)}`;
      const started = await c.runs.start({ agentId: agent.id, input });
      return settled(c, started.id);
    });
    expect(run).toMatchObject({ status: 'failed', error: { appCode: 'run.output_invalid' } });
    expect(maxDelayMs).toBeLessThan(1_000);
  });
});

/** The V8 collector, so heap sizes can be read without garbage in them. */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

describe('compiled schemas are bounded', () => {
  it('equal schemas share one validator, whatever their key order', () => {
    const a = compileSchema({ type: 'object', properties: { x: { type: 'string' }, y: {} } });
    const b = compileSchema({ properties: { y: {}, x: { type: 'string' } }, type: 'object' });
    expect(b).toBe(a);
  });

  it('many distinct large schemas retain no more than the cache bound', () => {
    const gc = collector();
    const heapMiB = () => {
      gc();
      return process.memoryUsage().heapUsed / 2 ** 20;
    };
    // Each ~28 KB (under SCHEMA_MAX_CHARS), mostly a description: 300 of them is 8 MB that a
    // store keeping every compiled schema would hold. (Text that Ajv writes into the generated
    // code, such as property names, also stays in V8's compilation cache until heap pressure
    // clears it.)
    const schema = (i: number) => ({
      type: 'object',
      description: `${i}:${randomBytes(14_000).toString('hex')}`,
      properties: Object.fromEntries(
        Array.from({ length: 20 }, (_, k) => [
          `p${k}`,
          { type: 'string', pattern: `^[a-z]{${k}}` },
        ]),
      ),
    });
    for (let i = 0; i < 40; i++) expect(schemaProblem(schema(i))).toBeNull();
    const before = heapMiB();
    for (let i = 40; i < 340; i++) expect(schemaProblem(schema(i))).toBeNull();
    const grown = heapMiB() - before;
    const stats = schemaCacheStats();
    expect(stats.entries).toBeLessThanOrEqual(SCHEMA_CACHE_MAX_ENTRIES);
    expect(stats.chars).toBeLessThanOrEqual(SCHEMA_CACHE_MAX_CHARS);
    expect(grown).toBeLessThan(4);
    // What was evicted is compiled again when asked for, and still works.
    const again = compileSchema(schema(0));
    expect(again({ p1: 'a' })).toBe(true);
    expect(again({ p1: '1' })).toBe(false);
  });
});

describe('schema size', () => {
  it('a schema over SCHEMA_MAX_CHARS is refused with its size, before any compile', () => {
    const big = { type: 'string', description: 'x'.repeat(SCHEMA_MAX_CHARS) };
    expect(schemaProblem(big)).toBe(
      `the schema is too large (${JSON.stringify(big).length} characters of JSON; at most ${SCHEMA_MAX_CHARS})`,
    );
    const fits = { type: 'string', description: 'x'.repeat(SCHEMA_MAX_CHARS - 100) };
    expect(schemaProblem(fits)).toBeNull();
  });
});

describe('each schema is compiled in isolation', () => {
  const shared = 'urn:example:shared';

  it('the same $id in two schemas: both compile, each validates by its own rules', () => {
    const text = compileSchema({ $id: shared, type: 'string' });
    const number = compileSchema({ $id: shared, type: 'number' });
    expect([text('x'), text(1), number('x'), number(1)]).toEqual([true, false, false, true]);
    // References inside a schema, by pointer or by its own $ids, still resolve.
    const own = compileSchema({
      $id: 'urn:example:own',
      definitions: { word: { $id: 'urn:example:word', type: 'string' } },
      properties: {
        a: { $ref: 'urn:example:own#/definitions/word' },
        b: { $ref: 'urn:example:word' },
      },
    });
    expect([own({ a: 'x', b: 'y' }), own({ a: 1 }), own({ b: 1 })]).toEqual([true, false, false]);
  });

  it('a $ref to anything outside the schema is refused', () => {
    for (const ref of [shared, `${shared}#/type`, 'http://json-schema.org/draft-07/schema#']) {
      expect(schemaProblem({ $ref: ref })).toMatch(/does not resolve inside this schema/);
    }
    expect(schemaProblem({ $schema: 'urn:example:meta' })).toMatch(/\$schema must be/);
  });

  it('two projects save agents with the same $id; runs validate each by its own schema', async () => {
    const one = await project('Tenant One');
    const two = await project('Tenant Two');
    const text = await one.c.agents.create({
      projectId: one.projectId,
      name: 'Texter',
      ...base,
      outputSchema: { $id: shared, type: 'string' },
    });
    const number = await two.c.agents.create({
      projectId: two.projectId,
      name: 'Counter',
      ...base,
      outputSchema: { $id: shared, type: 'number' },
    });
    const updated = await two.c.agents.update({
      agentId: number.id,
      outputSchema: { $id: shared, type: 'number', minimum: 0 },
    });
    expect(updated.outputSchema).toEqual({ $id: shared, type: 'number', minimum: 0 });

    const run = async (c: typeof one.c, agentId: string, value: unknown) =>
      settled(c, (await c.runs.start({ agentId, input: fencedJson(value) })).id);
    expect(await run(one.c, text.id, 'hello')).toMatchObject({
      status: 'succeeded',
      output: 'hello',
    });
    expect(await run(two.c, number.id, 42)).toMatchObject({ status: 'succeeded', output: 42 });
    expect(await run(two.c, number.id, 'hello')).toMatchObject({
      status: 'failed',
      error: { appCode: 'run.output_invalid' },
    });

    expect(
      await refusal(
        two.c.agents.create({
          projectId: two.projectId,
          name: 'Borrower',
          ...base,
          outputSchema: { $ref: shared },
        }),
      ),
    ).toEqual({
      appCode: 'agents.invalid',
      message: `Invalid outputSchema: $ref "${shared}" does not resolve inside this schema; references to other schemas are not supported`,
    });
  });
});
