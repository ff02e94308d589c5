/**
 * Inputs for the procedure walk (fuzz.test.ts): a valid-looking base input derived from each
 * procedure's JSON Schema (the one GET /docs shows), and malformed variants of it.
 */

export type JsonSchema = { [key: string]: unknown };

/** JSON text spliced into the request as is: values JSON.stringify cannot write (1e999). */
export class RawJson {
  constructor(readonly text: string) {}
}

export interface Mutant {
  label: string;
  /** The top-level field that was changed; null when the whole input was. */
  field: string | null;
  input: unknown;
  /** Holds a NUL, a lone surrogate or an out-of-range date: must be refused as invalid. */
  mustRefuse: boolean;
}

/** Sizes that stay under the transport's own limits (URL length, WS frame, body). */
export interface Limits {
  hugeString: number;
  /** Nesting depth of the one deepest value sent to each procedure. */
  depth: number;
}

const OMIT = Symbol('omit');

/**
 * Values for fields whose schema alone does not say what a service would accept (a refinement
 * has no JSON Schema form, or fields depend on each other). Ids come from the fixtures.
 */
function hint(name: string): unknown {
  const now = Date.now();
  switch (name) {
    case 'from':
      return new Date(now - 30 * 86_400_000).toISOString();
    case 'to':
      return new Date(now).toISOString();
    case 'expiresAt':
      return new Date(now + 86_400_000).toISOString();
    case 'address':
      return `0x${'1'.repeat(40)}`;
    case 'email':
      return 'fuzz-target@example.com';
    case 'password':
    case 'newPassword':
      return 'a long fuzz password';
    case 'model':
      return 'mock-echo';
    // A bad cursor or a project limit with a scopeId stop a service early: leave them out.
    case 'cursor':
    case 'scopeId':
      return OMIT;
    default:
      return undefined;
  }
}

const PATTERN_SAMPLES = ['1.5', `0x${'ab'.repeat(32)}`, `0x${'ab'.repeat(65)}`];

function sampleString(s: JsonSchema): string {
  if (s.format === 'date-time') return new Date().toISOString();
  if (s.format === 'email') return 'fuzz-target@example.com';
  if (typeof s.pattern === 'string') {
    const re = new RegExp(s.pattern);
    const found = PATTERN_SAMPLES.find((v) => re.test(v));
    if (found) return found;
  }
  return 'fuzz value';
}

function sample(name: string, s: JsonSchema, ids: Record<string, string>): unknown {
  const hinted = hint(name);
  if (hinted !== undefined) return hinted;
  if (Array.isArray(s.anyOf)) {
    // Nullable fields are sent as null: "no value" is valid and starts nothing extra.
    const branches = s.anyOf as JsonSchema[];
    if (branches.some((b) => b.type === 'null')) return null;
    return sample(name, branches[0] ?? {}, ids);
  }
  if (Array.isArray(s.enum)) return s.enum[0];
  switch (s.type) {
    case 'string':
      return s.format === 'uuid' ? (ids[name] ?? ids.unknownId) : sampleString(s);
    case 'integer':
    case 'number':
      return s.maximum ?? s.minimum ?? 1;
    case 'boolean':
      return true;
    case 'array':
      return [];
    case 'object':
      return {};
    default:
      return 'fuzz value';
  }
}

/** A valid-looking input: every documented field, required or not, with a plausible value. */
export function baseInput(schema: JsonSchema | null, ids: Record<string, string>): unknown {
  if (!schema) return undefined;
  const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
  const out: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(props)) {
    const v = sample(name, s, ids);
    if (v !== OMIT) out[name] = v;
  }
  return out;
}

/** Arrays and objects nested `depth` deep, as JSON text: deeper than JSON.stringify can go. */
function nested(depth: number): RawJson {
  const open = Array.from({ length: depth }, (_, i) => (i % 2 ? '{"a":' : '['));
  const close = open.map((o) => (o === '[' ? ']' : '}')).reverse();
  return new RawJson(`${open.join('')}"bottom"${close.join('')}`);
}

function b64Cursor(at: string, id: string): string {
  return Buffer.from(JSON.stringify([at, id])).toString('base64url');
}

function isDateTime(s: JsonSchema): boolean {
  if (s.format === 'date-time') return true;
  return Array.isArray(s.anyOf) && (s.anyOf as JsonSchema[]).some(isDateTime);
}

interface Bad {
  label: string;
  value: unknown;
  mustRefuse: boolean;
}

const refused = (label: string, value: unknown): Bad => ({ label, value, mustRefuse: true });
const odd = (label: string, value: unknown): Bad => ({ label, value, mustRefuse: false });

/** JSON types a field's schema admits (through `anyOf` too). */
function typesOf(s: JsonSchema): Set<string> {
  const own = typeof s.type === 'string' ? [s.type] : [];
  const branches = Array.isArray(s.anyOf) ? (s.anyOf as JsonSchema[]) : [];
  return new Set([...own, ...branches.flatMap((b) => [...typesOf(b)])]);
}

/**
 * Malformed values for one field: bad text and wrong types everywhere, then what stresses the
 * type the field takes (numbers at the edges, huge strings, long arrays, dates out of range).
 */
function badValues(limits: Limits, name: string, field: JsonSchema, base: unknown, id: string) {
  const types = typesOf(field);
  const values: Bad[] = [
    refused('NUL', 'a\u0000b'),
    refused('lone surrogate', 'x\ud800y'),
    refused('NUL in a key, lone surrogate in a value', { 'k\u0000': ['x\udc00'] }),
    odd('1e308', 1e308),
    odd('1e999 (Infinity once parsed)', new RawJson('1e999')),
    odd('true', true),
    odd('null', null),
    // Deeper than any input needs; the extreme depth goes in once per procedure (below).
    odd('nested 200 deep', nested(200)),
  ];
  if (typeof base === 'string') values.push(refused('NUL appended', `${base}\u0000`));
  if (types.has('string')) {
    values.push(
      odd('huge string', 'x'.repeat(limits.hugeString)),
      odd('empty string', ''),
      odd('20 digits', '99999999999999999999'),
      odd('"NaN"', 'NaN'),
    );
  }
  if (types.has('number') || types.has('integer')) {
    values.push(
      odd('-0', -0),
      odd('MAX_SAFE_INTEGER+1', Number.MAX_SAFE_INTEGER + 1),
      odd('1.5', 1.5),
      odd('-1', -1),
    );
  }
  if (types.has('array')) {
    values.push(
      refused('NUL in an item', ['a\u0000b']),
      odd(
        'long array',
        Array.from({ length: 2_000 }, () => 'a'),
      ),
    );
  }
  if (isDateTime(field)) {
    values.push(
      refused('year 10000 via offset', '9999-12-31T23:59:59-23:59'),
      refused('year 0', '0000-01-01T00:00:00Z'),
      refused('year -1 via offset', '0000-01-01T00:00:00+23:59'),
      refused('expanded year', '+010000-01-01T00:00:00Z'),
    );
  }
  // Opaque cursors decode to a date: these sit at and past the edges PostgreSQL stores.
  if (name === 'cursor') {
    values.push(
      odd('cursor at year 0', b64Cursor('0000-01-01T00:00:00Z', id)),
      odd('cursor at the last instant', b64Cursor('9999-12-31T23:59:59.999Z', id)),
    );
  }
  return values;
}

/** `obj` with a literal `__proto__` key in front (an object literal cannot hold one). */
function protoKeyed(obj: Record<string, unknown>): RawJson {
  const fields = JSON.stringify(obj).slice(1, -1);
  return new RawJson(`{"__proto__":{"polluted":true}${fields ? `,${fields}` : ''}}`);
}

/** Every malformed variant of `base`: the whole input replaced, then each field in turn. */
export function mutants(
  base: unknown,
  schema: JsonSchema | null,
  limits: Limits,
  anyId: string,
): Mutant[] {
  const obj = (base ?? {}) as Record<string, unknown>;
  const out: Mutant[] = [
    { label: 'no input', field: null, input: undefined, mustRefuse: false },
    { label: 'null', field: null, input: null, mustRefuse: false },
    { label: 'a string', field: null, input: 'a\u0000b', mustRefuse: true },
    { label: 'a number', field: null, input: 42, mustRefuse: false },
    { label: 'an array', field: null, input: [obj], mustRefuse: false },
    { label: 'extra key', field: null, input: { ...obj, extra: 1 }, mustRefuse: false },
    {
      label: 'NUL in an extra key',
      field: null,
      input: { ...obj, 'e\u0000': 1 },
      mustRefuse: true,
    },
    {
      label: 'lone surrogate in an extra value',
      field: null,
      input: { ...obj, extra: 'x\udfff' },
      mustRefuse: true,
    },
    {
      label: 'deep extra value',
      field: null,
      input: { ...obj, extra: nested(limits.depth) },
      mustRefuse: false,
    },
    {
      label: '__proto__ key',
      field: null,
      input: protoKeyed(obj),
      mustRefuse: false,
    },
  ];
  const props = (schema?.properties ?? {}) as Record<string, JsonSchema>;
  for (const [field, fieldSchema] of Object.entries(props)) {
    for (const bad of badValues(limits, field, fieldSchema, obj[field], anyId)) {
      out.push({
        label: `${field}: ${bad.label}`,
        field,
        input: { ...obj, [field]: bad.value },
        mustRefuse: bad.mustRefuse,
      });
    }
  }
  return out;
}

/** JSON text of an input, with RawJson values spliced in. */
export function toJsonText(input: unknown): string | undefined {
  if (input instanceof RawJson) return input.text;
  const raws: string[] = [];
  const text = JSON.stringify(input, (_key, value) => {
    if (value instanceof RawJson) {
      raws.push(value.text);
      return `\u0001raw${raws.length - 1}\u0001`;
    }
    return value;
  });
  if (text === undefined) return undefined;
  return text.replace(/"\\u0001raw(\d+)\\u0001"/g, (_m, i: string) => raws[Number(i)] ?? 'null');
}

/** The value a server sees after parsing the JSON text (what a typed client can send). */
export function asParsed(input: unknown): unknown {
  const text = toJsonText(input);
  return text === undefined ? undefined : JSON.parse(text);
}
