import { closeClient } from '@smartspace/client';
import type { Command } from 'commander';
import pc from 'picocolors';
import { globals, isUuid, makeClient, resolveUrl, withClient } from '../context';
import { readCredentials, removeCredentials, writeCredentials } from '../credentials';
import { cliEnv } from '../env';
import { CliError, UsageError } from '../errors';
import { note, printJson, printRecord, success } from '../output';
import { Prompter } from '../prompt';

interface LoginOptions {
  email?: string;
  apiKey?: string | true;
}

/** The non-secret start of a key (as the server lists it), safe to print. */
export function keyPrefix(key: string): string {
  return `${key.slice(0, 12)}…`;
}

/**
 * Saves a project API key instead of a session. With a project it is checked against the
 * server at once (a key can read its own project and nothing outside it).
 */
async function loginWithKey(url: string, given: string | true, cmd: Command): Promise<void> {
  const g = globals(cmd);
  let key = given === true ? cliEnv.apiKey() : given;
  if (!key) {
    const prompter = new Prompter();
    try {
      key = (await prompter.ask('API key: ', { secret: true })).trim();
    } finally {
      prompter.close();
    }
  }
  if (!key.startsWith('ssk_')) throw new UsageError('An API key starts with ssk_');
  const projectId = g.project ?? cliEnv.project();
  if (projectId && !isUuid(projectId)) {
    throw new UsageError('With an API key, --project takes the project id.');
  }
  // Checked against the server at once: a key sees its own project and nothing else.
  const client = makeClient(url, key);
  let project: { id: string; name: string } | undefined;
  try {
    project = projectId
      ? await client.projects.get.query({ projectId })
      : (await client.projects.list.query()).items[0];
  } finally {
    await closeClient(client);
  }
  if (!project) throw new CliError('This API key has no project', 'projects.not_found');
  writeCredentials({ url, apiKey: key, project: project.id });
  if (g.json) printJson({ url, apiKey: keyPrefix(key), project: project.id });
  else success(`Saved API key ${keyPrefix(key)} for ${url} (project ${pc.bold(project.name)})`);
}

async function login(opts: LoginOptions, cmd: Command): Promise<void> {
  const g = globals(cmd);
  const url = resolveUrl(g);
  if (opts.apiKey !== undefined) return loginWithKey(url, opts.apiKey, cmd);
  const prompter = new Prompter();
  let email: string;
  let password: string;
  try {
    email = (opts.email ?? (await prompter.ask('Email: '))).trim();
    password = await prompter.ask('Password: ', { secret: true });
  } finally {
    prompter.close();
  }
  if (!email || !password) throw new CliError('Email and password are both needed.');
  const client = makeClient(url);
  try {
    const session = await client.auth.login.mutate({ email, password });
    writeCredentials({ url, session });
    if (g.json) printJson({ url, user: session.user });
    else success(`Signed in to ${url} as ${pc.bold(session.user.email)}`);
  } finally {
    await closeClient(client);
  }
}

async function logout(cmd: Command): Promise<void> {
  const g = globals(cmd);
  const creds = readCredentials();
  if (!creds) {
    if (g.json) printJson({ signedOut: false });
    else note('Not signed in.');
    return;
  }
  const refreshToken = creds.session?.refreshToken;
  if (refreshToken) {
    const client = makeClient(creds.url);
    try {
      await client.auth.logout.mutate({ refreshToken });
    } catch {
      // The local sign-in goes regardless: the refresh token expires on its own.
      note(pc.yellow('The server could not be told; the saved sign-in is removed anyway.'));
    } finally {
      await closeClient(client);
    }
  }
  removeCredentials();
  if (g.json) printJson({ signedOut: true, url: creds.url });
  else success(`Signed out of ${creds.url}`);
}

async function whoami(cmd: Command): Promise<void> {
  await withClient(cmd, async (ctx) => {
    const { client, url, opts } = ctx;
    if (ctx.apiKey) {
      // A key is no person: show what it is for, checked against the server when possible.
      const projectId = opts.project ?? cliEnv.project() ?? ctx.defaultProject;
      const project = projectId
        ? await client.projects.get.query({ projectId })
        : ((await client.projects.list.query()).items[0] ?? null);
      const out = {
        url,
        apiKey: keyPrefix(ctx.apiKey),
        project: project && { id: project.id, name: project.name },
      };
      if (opts.json) printJson(out);
      else
        printRecord({
          'api key': out.apiKey,
          project: project ? `${project.name} (${project.id})` : '',
          server: url,
        });
      return;
    }
    const me = await client.users.me.query();
    if (opts.json) printJson({ url, user: me });
    else printRecord({ email: me.email, name: me.name, role: me.role, id: me.id, server: url });
  });
}

export function registerAuth(program: Command): void {
  program
    .command('login')
    .description('sign in (asks for email and password) and keep the session')
    .option('--email <email>', 'email address (asked for when omitted)')
    .option(
      '--api-key [key]',
      'use a project API key (ssk_…) instead; asked for, or SMARTSPACE_API_KEY, when no value',
    )
    .action((opts: LoginOptions, cmd: Command) => login(opts, cmd));
  program
    .command('logout')
    .description('sign out and forget the saved credentials')
    .action((_opts, cmd: Command) => logout(cmd));
  program
    .command('whoami')
    .description('show the signed-in user')
    .action((_opts, cmd: Command) => whoami(cmd));
}
