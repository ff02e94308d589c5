import { createHash } from 'node:crypto';
import { Ajv, MissingRefError, type Options, type ValidateFunction } from 'ajv';
import { BoundedCache } from './schema-cache';
import { linearRegExpEngine } from './schema-pattern';

/**
 * JSON Schema for agents' structured output, via Ajv (the reference validator). Each schema
 * is compiled by an Ajv instance of its own, so one tenant's `$id` can neither clash with
 * nor be `$ref`erenced by another's, and nothing outlives the compiled validator. Compiled
 * validators are cached by content, in a cache bounded in count and size.
 */

const DRAFT_07 = 'http://json-schema.org/draft-07/schema';

/** Validates schemas against the draft-07 meta-schema; holds no user schema. */
const meta = new Ajv({ allErrors: true, strict: false, logger: false });

const isolated: Options = {
  allErrors: true,
  strict: false,
  // Meta-validation is `meta`'s job; without the meta-schema here, no $ref outside the
  // schema itself can resolve.
  meta: false,
  validateSchema: false,
  // Warnings (unknown formats, ignored keywords) are for schema authors, not server logs.
  logger: false,
};

/**
 * Largest schema accepted, in characters of canonical JSON. Ajv's compile time grows with the
 * schema (about 0.5 s for 1,000 properties, on the event loop), so the size bounds the stall
 * one save can cause; structured-output schemas are far smaller.
 */
export const SCHEMA_MAX_CHARS = 32_768;

/** Bounds what compiled validators retain: at most this many, from this much schema JSON. */
export const SCHEMA_CACHE_MAX_ENTRIES = 64;
export const SCHEMA_CACHE_MAX_CHARS = 1_000_000;
const compiled = new BoundedCache<ValidateFunction>(
  SCHEMA_CACHE_MAX_ENTRIES,
  SCHEMA_CACHE_MAX_CHARS,
);

/** What the validator cache holds now (for tests and diagnostics). */
export function schemaCacheStats(): { entries: number; chars: number } {
  return { entries: compiled.size, chars: compiled.weight };
}

/** The schema's JSON with every object's keys sorted: equal schemas, equal text. */
function canonicalJson(schema: unknown): string {
  return JSON.stringify(schema, (_key, value: unknown) =>
    value !== null && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : value,
  );
}

/** Throws a message naming what is wrong when the schema cannot be used. */
export function compileSchema(schema: Record<string, unknown>): ValidateFunction {
  const source = canonicalJson(schema);
  if (source.length > SCHEMA_MAX_CHARS) {
    throw new Error(
      `the schema is too large (${source.length} characters of JSON; at most ${SCHEMA_MAX_CHARS})`,
    );
  }
  const key = createHash('sha256').update(source).digest('base64url');
  const cached = compiled.get(key);
  if (cached) return cached;
  // Compiled from a private copy: Ajv's validators read parts of their schema (enum, const)
  // when they run, so a caller mutating its object later must not change them.
  const validate = compileIsolated(JSON.parse(source) as Record<string, unknown>);
  compiled.set(key, validate, source.length);
  return validate;
}

function compileIsolated(schema: Record<string, unknown>): ValidateFunction {
  const declared = schema.$schema;
  // Only draft-07, the one meta-schema loaded: `meta` would remember any other key it resolves.
  if (declared !== undefined && declared !== DRAFT_07 && declared !== `${DRAFT_07}#`) {
    throw new Error(`$schema must be ${DRAFT_07}# (draft-07) or absent`);
  }
  meta.validateSchema(schema, true);
  const ajv = new Ajv({ ...isolated, code: { regExp: linearRegExpEngine() } });
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(schema);
  } catch (e) {
    if (e instanceof MissingRefError) {
      throw new Error(
        `$ref "${e.missingRef}" does not resolve inside this schema; references to other schemas are not supported`,
      );
    }
    throw e;
  }
  // An async validator returns a promise, which would pass every answer as valid.
  if ((validate as { $async?: unknown }).$async) {
    throw new Error('asynchronous schemas ($async) are not supported');
  }
  return validate;
}

/** Null when valid, else a message naming what is wrong. */
export function schemaProblem(schema: unknown): string | null {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    return 'outputSchema must be a JSON Schema object';
  }
  try {
    compileSchema(schema as Record<string, unknown>);
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : 'invalid JSON Schema';
  }
}

export function validationErrors(validate: ValidateFunction): string {
  return (validate.errors ?? [])
    .map((e) => `${e.instancePath || '(root)'} ${e.message ?? 'is invalid'}`)
    .join('; ');
}
