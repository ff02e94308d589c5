import { z } from 'zod';

/**
 * One environment setting, written once: its variable, schema, default and meaning. Features
 * declare theirs in `<feature>.config.ts`; `config.ts` composes them and is the only reader of
 * the environment. README's table and `.env.example` are checked against these by a test.
 */
export interface Setting<S extends z.ZodType = z.ZodType> {
  env: string;
  schema: S;
  /** The value as written in the environment; unset when the default is not a literal. */
  default?: string;
  doc: string;
}

/** Config properties (nested groups allowed) whose leaves are settings. */
export interface SettingsTree {
  [property: string]: Setting | SettingsTree;
}

export type SettingsOutput<T> = {
  [K in keyof T]: T[K] extends Setting<infer S> ? z.output<S> : SettingsOutput<T[K]>;
};

export function setting<S extends z.ZodType>(def: Setting<S>): Setting<S> {
  return def;
}

function isSetting(node: Setting | SettingsTree): node is Setting {
  return typeof node.env === 'string' && node.schema instanceof z.ZodType;
}

export function listSettings(tree: SettingsTree): Setting[] {
  return Object.values(tree).flatMap((node) => (isSetting(node) ? [node] : listSettings(node)));
}

function pick(tree: SettingsTree, env: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(tree).map(([key, node]) => [
      key,
      isSetting(node) ? env[node.env] : pick(node, env),
    ]),
  );
}

/**
 * A zod object keyed by variable name (so issues name the variable) that transforms into the
 * tree's shape. A literal default goes through the schema like a value read from the
 * environment.
 */
export function settingsSchema<T extends SettingsTree>(tree: T) {
  const shape = Object.fromEntries(
    listSettings(tree).map((s) => {
      const fallback = s.default;
      const schema =
        fallback === undefined ? s.schema : z.preprocess((v) => v ?? fallback, s.schema);
      return [s.env, schema];
    }),
  );
  return z.object(shape).transform((env) => pick(tree, env) as SettingsOutput<T>);
}

// Field schemas shared by the features' settings.
export const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
export const list = z.string().transform((v) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);
export const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
export const httpUrl = () => z.url({ protocol: /^https?$/, error: 'must be an http(s):// URL' });
export const json = z.string().transform((v, ctx): unknown => {
  try {
    return JSON.parse(v);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be valid JSON' });
    return z.NEVER;
  }
});
