import type { AnyTRPCRouter } from '@trpc/server';
import { type AuthLevel, keysAllowed } from '../trpc';
import { routerProcedures } from './router-internals';
import {
  acceptsFormData,
  type JsonSchema,
  mergeInputs,
  type SchemaComponents,
  toJsonSchema,
} from './schema';

export type ProcedureKind = 'query' | 'mutation' | 'subscription';

export interface ProcedureDoc {
  /** Dotted path, as called: `projects.members.add`. */
  path: string;
  kind: ProcedureKind;
  /** From the builder the procedure was made with; null if it bypassed them all. */
  auth: AuthLevel | null;
  /** Whether a project API key (`ssk_…`) may call it. */
  apiKeys: boolean;
  description: string | null;
  /** `form-data`: a multipart upload; `none`: the procedure takes no input. */
  inputKind: 'none' | 'json' | 'form-data';
  /** What the client sends (before defaults and transforms); null for no input. */
  input: JsonSchema | null;
  /** Only for procedures that declare `.output()`; others are typed in TypeScript alone. */
  output: JsonSchema | null;
}

const undescribable: JsonSchema = {
  description: 'Validated by a parser that has no JSON Schema form; see the typed client.',
};

/**
 * Every procedure of a router, read from the router itself: a new procedure appears here
 * (and in GET /docs) without anyone writing documentation for it.
 */
export function describeProcedures(
  router: AnyTRPCRouter,
  components: SchemaComponents = {},
): ProcedureDoc[] {
  return [...routerProcedures(router)].map(([path, def]) => {
    const parts = def.inputs.map((parser) => ({
      parser,
      schema: toJsonSchema(parser, 'input', components, `${path}.input`),
    }));
    const formData = parts.some(
      ({ parser, schema }) => schema !== null && isAny(schema) && acceptsFormData(parser),
    );
    const schemas = parts
      .map(({ schema }) => schema ?? undescribable)
      // The FormData parser itself adds nothing a reader can use; the other parsers name fields.
      .filter((s) => !(formData && isAny(s)));
    const input = formData
      ? { type: 'object', ...(mergeInputs(schemas) ?? {}) }
      : mergeInputs(schemas);
    return {
      path,
      kind: def.type,
      auth: def.meta?.auth ?? null,
      apiKeys: keysAllowed(def.meta),
      description: def.meta?.description ?? null,
      inputKind: formData ? 'form-data' : input ? 'json' : 'none',
      input,
      output:
        def.output === undefined
          ? null
          : (toJsonSchema(def.output, 'output', components, `${path}.output`) ?? undescribable),
    };
  });
}

function isAny(schema: JsonSchema): boolean {
  return Object.keys(schema).length === 0;
}
