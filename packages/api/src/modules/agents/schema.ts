import { Ajv, type ValidateFunction } from 'ajv';

/**
 * JSON Schema for agents' structured output, via Ajv (the reference validator): compiled
 * once per schema, strict about the schema itself so a typo is a clear error at create time.
 */
const ajv = new Ajv({ allErrors: true, strict: false });
const cache = new WeakMap<object, ValidateFunction>();

export function compileSchema(schema: Record<string, unknown>): ValidateFunction {
  let fn = cache.get(schema);
  if (!fn) {
    fn = ajv.compile(schema);
    cache.set(schema, fn);
  }
  return fn;
}

/** Null when valid, else a message naming what is wrong. */
export function schemaProblem(schema: unknown): string | null {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    return 'outputSchema must be a JSON Schema object';
  }
  try {
    ajv.compile(schema);
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
