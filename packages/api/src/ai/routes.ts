import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { httpUrl } from '../lib/settings';
import { MODEL_IDS } from './models';

/**
 * Model routes: public model ids this deployment serves through an upstream of its choice
 * (an Anthropic-compatible gateway, an OpenAI-compatible server, Bedrock), each with its own
 * prices and limits. Declared as JSON in MODEL_ROUTES or in the file MODEL_ROUTES_FILE names.
 * Credentials are never written in the routes: a route names the environment variables that
 * hold them, read once at start-up, so the JSON can be committed and shown safely.
 */

// Up to six decimals: prices are converted to exact integer units (lib/money.ts).
const price = z
  .union([z.string(), z.number()])
  .transform(String)
  .pipe(
    z.string().regex(/^\d+(\.\d{1,6})?$/, 'must be a non-negative decimal such as "3" or "0.25"'),
  );

const envName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be the NAME of an environment variable');

const routeSchema = z.strictObject({
  provider: z.enum(['anthropic', 'openai', 'bedrock']),
  upstreamModel: z.string().trim().min(1),
  baseUrl: httpUrl().optional(),
  /** anthropic / openai: the variable holding the API key. */
  apiKeyEnv: envName.optional(),
  /** bedrock: the region, and the variables holding the AWS credentials. */
  awsRegion: z.string().trim().min(1).optional(),
  awsAccessKeyEnv: envName.optional(),
  awsSecretKeyEnv: envName.optional(),
  prices: z.strictObject({
    input: price,
    output: price,
    cacheWrite: price.optional(),
    cacheRead: price.optional(),
  }),
  contextWindow: z.number().int().min(1),
  maxOutputTokens: z.number().int().min(1),
  /** Routes tried in order when this one fails before its first token (429, 5xx, no connection). */
  fallbacks: z.array(z.string().min(1)).max(8).optional(),
  /** SDK retries before falling back (default ANTHROPIC_MAX_RETRIES). */
  maxRetries: z.number().int().min(0).max(10).optional(),
});

export type RouteDeclaration = z.output<typeof routeSchema>;

const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

/** `MODEL_ROUTES`: `{"<public model id>": {provider, upstreamModel, apiKeyEnv, prices, …}}`. */
export const modelRoutesSchema = z.record(z.string(), routeSchema).superRefine((routes, ctx) => {
  for (const [id, route] of Object.entries(routes)) {
    const issue = (message: string, ...path: string[]) =>
      ctx.addIssue({ code: 'custom', path: [id, ...path], message });
    if (!MODEL_ID.test(id)) issue('model ids are 1-128 of [A-Za-z0-9._:/-]');
    if (MODEL_IDS.includes(id)) issue('is a built-in model id; give the route its own id');
    if (route.provider === 'bedrock') {
      if (!route.awsRegion) issue('required for provider bedrock', 'awsRegion');
      if (!route.awsAccessKeyEnv) issue('required for provider bedrock', 'awsAccessKeyEnv');
      if (!route.awsSecretKeyEnv) issue('required for provider bedrock', 'awsSecretKeyEnv');
    } else if (!route.apiKeyEnv) {
      issue(`required for provider ${route.provider}`, 'apiKeyEnv');
    }
    if (route.maxOutputTokens > route.contextWindow) {
      issue('must not exceed contextWindow', 'maxOutputTokens');
    }
    for (const [i, next] of (route.fallbacks ?? []).entries()) {
      if (next === id) issue('a route cannot fall back to itself', 'fallbacks', String(i));
      else if (!(next in routes)) {
        issue(`"${next}" is not a route in MODEL_ROUTES`, 'fallbacks', String(i));
      }
    }
  }
});

export type RouteDeclarations = z.output<typeof modelRoutesSchema>;

/** A route with its credentials read from the environment. */
export interface ModelRoute extends Omit<RouteDeclaration, 'fallbacks'> {
  id: string;
  fallbacks: string[];
  /** anthropic / openai. */
  apiKey?: string | undefined;
  /** bedrock. */
  awsAccessKey?: string | undefined;
  awsSecretKey?: string | undefined;
}

export class RoutesError extends Error {
  override name = 'RoutesError';
}

/**
 * Reads the routes from MODEL_ROUTES (inline JSON) or MODEL_ROUTES_FILE (a JSON file), then
 * each route's credentials from the variables it names. Every problem is reported at once,
 * each line naming the variable, route and field to fix; never a credential's value.
 */
export function loadModelRoutes(env: Record<string, string | undefined>): ModelRoute[] {
  const inline = env.MODEL_ROUTES;
  const file = env.MODEL_ROUTES_FILE;
  if (inline && file) {
    throw new RoutesError('MODEL_ROUTES and MODEL_ROUTES_FILE are both set; use one of them');
  }
  if (!(inline || file)) return [];
  const source = inline ? 'MODEL_ROUTES' : `MODEL_ROUTES_FILE (${file})`;
  const text = inline ?? readRoutesFile(file as string);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new RoutesError(`${source}: must be valid JSON (${(err as Error).message})`);
  }
  const parsed = modelRoutesSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${source}.${i.path.join('.')}: ${i.message}`);
    throw new RoutesError(`Invalid model routes:\n${lines.join('\n')}`);
  }
  const missing: string[] = [];
  const secret = (id: string, field: string, name: string | undefined) => {
    if (name === undefined) return undefined;
    const value = env[name]?.trim();
    if (!value) missing.push(`  ${name}: not set (named by ${source}.${id}.${field})`);
    return value || undefined;
  };
  const routes = Object.entries(parsed.data).map(
    ([id, r]): ModelRoute => ({
      ...r,
      id,
      fallbacks: r.fallbacks ?? [],
      apiKey: secret(id, 'apiKeyEnv', r.apiKeyEnv),
      awsAccessKey: secret(id, 'awsAccessKeyEnv', r.awsAccessKeyEnv),
      awsSecretKey: secret(id, 'awsSecretKeyEnv', r.awsSecretKeyEnv),
    }),
  );
  if (missing.length > 0) {
    throw new RoutesError(`Model routes need credentials that are not set:\n${missing.join('\n')}`);
  }
  return routes;
}

function readRoutesFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new RoutesError(`MODEL_ROUTES_FILE: cannot read ${path} (${reason})`);
  }
}
