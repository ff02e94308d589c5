import { z } from 'zod';

export type JsonSchema = { [key: string]: unknown };

/**
 * Named sub-schemas gathered while converting, destined for `components.schemas`: an OpenAPI
 * document resolves `#/...` against its own root, so zod's local `$defs` must move there.
 */
export type SchemaComponents = Record<string, JsonSchema>;

const componentRef = (name: string) => `#/components/schemas/${name}`;
const safeName = (name: string) => name.replace(/[^A-Za-z0-9._-]/g, '_');

function rewriteRefs(node: unknown, names: Map<string, string>, self: string | null): unknown {
  if (Array.isArray(node)) return node.map((n) => rewriteRefs(n, names, self));
  if (node === null || typeof node !== 'object') return node;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$ref' && typeof value === 'string') {
      const local = value.startsWith('#/$defs/') ? names.get(value.slice(8)) : undefined;
      out.$ref = local ? componentRef(local) : value === '#' && self ? componentRef(self) : value;
    } else {
      out[key] = rewriteRefs(value, names, self);
    }
  }
  return out;
}

function hasRootRef(node: unknown): boolean {
  if (Array.isArray(node)) return node.some(hasRootRef);
  if (node === null || typeof node !== 'object') return false;
  return Object.entries(node).some(([k, v]) => (k === '$ref' ? v === '#' : hasRootRef(v)));
}

/**
 * JSON Schema (2020-12, the OpenAPI 3.1 dialect) of a zod parser, or null for a parser zod
 * cannot describe. `io: 'input'` documents what a client sends (before transforms and
 * defaults); `'output'` what it receives. Sub-schemas go to `components` under `prefix`,
 * except ones given an explicit id (`.meta({ id })`), which are meant to be shared.
 */
export function toJsonSchema(
  parser: unknown,
  io: 'input' | 'output',
  components: SchemaComponents,
  prefix: string,
): JsonSchema | null {
  if (!(parser instanceof z.core.$ZodType)) return null;
  let converted: JsonSchema;
  try {
    // Dates, bigints and custom checks have no JSON form: documented as "any" rather than fail.
    converted = z.toJSONSchema(parser, { io, unrepresentable: 'any' }) as JsonSchema;
  } catch {
    return null;
  }
  const { $schema: _, $defs, ...root } = converted;
  const defs = ($defs ?? {}) as Record<string, JsonSchema>;
  const names = new Map<string, string>();
  for (const [name, def] of Object.entries(defs)) {
    const shared = !name.startsWith('__schema') && !components[safeName(name)];
    const sameAsShared = JSON.stringify(components[safeName(name)]) === JSON.stringify(def);
    names.set(name, shared || sameAsShared ? safeName(name) : safeName(`${prefix}.${name}`));
  }
  const self = hasRootRef(root) ? safeName(prefix) : null;
  for (const [name, def] of Object.entries(defs)) {
    components[names.get(name) as string] = rewriteRefs(def, names, self) as JsonSchema;
  }
  const schema = rewriteRefs(root, names, self) as JsonSchema;
  if (!self) return schema;
  components[self] = schema;
  return { $ref: componentRef(self) };
}

/**
 * tRPC parses a procedure's input with each of its `.input()` parsers and merges the results,
 * so the input a client sends is the union of their object properties.
 */
export function mergeInputs(schemas: JsonSchema[]): JsonSchema | null {
  if (schemas.length === 0) return null;
  if (schemas.length === 1) return schemas[0] ?? null;
  const plainObjects = schemas.every((s) => s.type === 'object' && s.$ref === undefined);
  if (!plainObjects) return { allOf: schemas };
  const properties: JsonSchema = {};
  const required = new Set<string>();
  for (const s of schemas) {
    Object.assign(properties, s.properties ?? {});
    for (const key of (s.required as string[] | undefined) ?? []) required.add(key);
  }
  return {
    type: 'object',
    properties,
    ...(required.size > 0 ? { required: [...required] } : {}),
  };
}

/**
 * True for a parser that takes multipart form data (file uploads, `z.instanceof(FormData)`).
 * Ask only of parsers whose JSON Schema is empty: a loose object schema accepts one too.
 */
export function acceptsFormData(parser: unknown): boolean {
  if (!(parser instanceof z.core.$ZodType)) return false;
  try {
    return z.safeParse(parser, new FormData()).success;
  } catch {
    // An async refinement cannot run synchronously; such a parser is not a plain FormData one.
    return false;
  }
}
