import { closeClient, createClient, type SmartSpaceClient } from '@smartspace/client';
import type { Command } from 'commander';
import WebSocket from 'ws';
import { fileSessionStore, readCredentials } from './credentials';
import { cliEnv } from './env';
import { CliError, UsageError } from './errors';
import type { GlobalOptions } from './output';

export const DEFAULT_URL = 'http://localhost:3000';

/** `http://host:3000`, `http://host:3000/` and `http://host:3000/trpc` all mean the same server. */
export function normaliseUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`Not a URL: ${raw}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`The server URL must be http(s): ${raw}`);
  }
  return url
    .toString()
    .replace(/\/+$/, '')
    .replace(/\/trpc$/, '');
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

/** --url, then SMARTSPACE_URL, then the server signed in to, then the local default. */
export function resolveUrl(opts: GlobalOptions): string {
  const raw = opts.url ?? cliEnv.url() ?? readCredentials()?.url ?? DEFAULT_URL;
  return normaliseUrl(raw);
}

export interface Ctx {
  url: string;
  opts: GlobalOptions;
  client: SmartSpaceClient;
  /** Set when calls go with a project API key rather than a person's session. */
  apiKey?: string;
  /** The project saved at login (API keys belong to one project). */
  defaultProject?: string;
}

/** The URL of the command being run, for error messages that name the server. */
export let currentUrl: string | undefined;

export interface ClientExtras {
  /** A fetch of the command's own (upload progress). */
  fetch?: typeof globalThis.fetch;
}

export function makeClient(
  url: string,
  apiKey?: string,
  extras: ClientExtras = {},
): SmartSpaceClient {
  currentUrl = url;
  return createClient({
    url: `${url}/trpc`,
    session: fileSessionStore(url),
    // Node 20 has no global WebSocket: the client's subscriptions go over `ws`.
    WebSocket,
    // A key is sent as it is: it has no refresh token and never expires mid-command.
    ...(apiKey ? { getAccessToken: () => apiKey } : {}),
    ...(extras.fetch ? { fetch: extras.fetch } : {}),
  });
}

/**
 * Runs `fn` with an authenticated client (SMARTSPACE_API_KEY, else the saved key or
 * session), closing its socket afterwards so the process can exit.
 */
export async function withClient<T>(
  cmd: Command,
  fn: (ctx: Ctx) => Promise<T>,
  extras: ClientExtras = {},
): Promise<T> {
  const opts = globals(cmd);
  const url = resolveUrl(opts);
  currentUrl = url;
  const creds = readCredentials();
  const saved = creds?.url === url ? creds : null;
  const apiKey = cliEnv.apiKey() ?? saved?.apiKey;
  if (!apiKey && !saved?.session) {
    throw new CliError(`Not signed in to ${url}: run \`smartspace login\` first.`, 'auth.required');
  }
  const client = makeClient(url, apiKey, extras);
  try {
    return await fn({ url, opts, client, apiKey, defaultProject: saved?.project });
  } finally {
    await closeClient(client);
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(s: string): boolean {
  return UUID.test(s);
}

/** Every page of a cursor-paginated list. */
export async function allPages<T>(
  fetchPage: (cursor: string | undefined) => Promise<{ items: T[]; nextCursor: string | null }>,
): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await fetchPage(cursor);
    out.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return out;
}

/**
 * A project by id or name (--project, else SMARTSPACE_PROJECT); with neither, the only
 * project the user has, so the common single-project case needs no flag.
 */
export async function resolveProject(ctx: Ctx, ref: string | undefined): Promise<string> {
  const wanted = ref ?? cliEnv.project() ?? ctx.defaultProject;
  if (wanted && isUuid(wanted)) return wanted;
  // A project API key lists exactly its own project, so the same rules find it.
  const projects = await allPages((cursor) =>
    ctx.client.projects.list.query({ cursor, limit: 100 }),
  );
  if (!wanted) {
    const [only] = projects;
    if (projects.length === 1 && only) return only.id;
    throw new UsageError(
      projects.length === 0
        ? 'You have no project yet: create one with `smartspace projects create <name>`.'
        : `You have ${projects.length} projects: pick one with --project <id|name>.`,
    );
  }
  const matches = projects.filter((p) => p.name.toLowerCase() === wanted.toLowerCase());
  const [match] = matches;
  if (matches.length === 1 && match) return match.id;
  if (matches.length > 1) {
    throw new UsageError(`Several projects are named "${wanted}": pass the project id instead.`);
  }
  throw new CliError(`No project named "${wanted}" among yours.`, 'projects.not_found');
}
