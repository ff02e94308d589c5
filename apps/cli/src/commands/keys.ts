import type { Command } from 'commander';
import pc from 'picocolors';
import { resolveProject, withClient } from '../context';
import { parseInstant } from '../dates';
import { UsageError } from '../errors';
import { note, printJson, printTable, shortDate, success } from '../output';

const ROLES = ['viewer', 'member', 'admin'] as const;
type Role = (typeof ROLES)[number];

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description("a project's API keys (project admins)");
  keys
    .command('create <name>')
    .description('create a key; its secret is printed once, keep it safe')
    .option('--role <role>', ROLES.join('|'), 'member')
    .option('--expires <date>', 'expiry, YYYY-MM-DD or ISO time (default: never)')
    .action((name: string, o: { role: string; expires?: string }, cmd: Command) => {
      if (!(ROLES as readonly string[]).includes(o.role)) {
        throw new UsageError(`--role takes one of ${ROLES.join(', ')}; not "${o.role}"`);
      }
      const expiresAt = o.expires ? parseInstant(o.expires, '--expires') : undefined;
      return withClient(cmd, async (ctx) => {
        const projectId = await resolveProject(ctx, ctx.opts.project);
        const created = await ctx.client.apiKeys.create.mutate({
          projectId,
          name,
          role: o.role as Role,
          expiresAt,
        });
        if (ctx.opts.json) return printJson(created);
        success(`Created key ${created.key.name} (${created.key.role}) ${pc.dim(created.key.id)}`);
        note(pc.yellow('The secret below is shown this once: store it now.'));
        process.stdout.write(`${created.secret}\n`);
      });
    });
  keys
    .command('list')
    .description("list the project's keys (never their secrets)")
    .action((_o, cmd: Command) =>
      withClient(cmd, async (ctx) => {
        const projectId = await resolveProject(ctx, ctx.opts.project);
        const items = await ctx.client.apiKeys.list.query({ projectId });
        if (ctx.opts.json) return printJson(items);
        printTable(
          ['id', 'name', 'prefix', 'role', 'last used', 'expires', 'revoked'],
          items.map((k) => [
            k.id,
            k.name,
            k.prefix,
            k.role,
            shortDate(k.lastUsedAt),
            shortDate(k.expiresAt),
            shortDate(k.revokedAt),
          ]),
        );
      }),
    );
  keys
    .command('revoke <keyId>')
    .description('revoke a key at once')
    .action((keyId: string, _o, cmd: Command) =>
      withClient(cmd, async (ctx) => {
        const key = await ctx.client.apiKeys.revoke.mutate({ keyId });
        if (ctx.opts.json) return printJson(key);
        success(`Revoked key ${key.name} (${key.prefix})`);
      }),
    );
}
