import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { CliError, UsageError } from '../errors';

/**
 * The server's own entry points, run as `pnpm db:migrate` / `pnpm mail:outbox` run them: from
 * the repository root (where DATA_DIR and .env resolve), compiled on the fly by tsx. Found
 * from the working directory or from where this CLI lives.
 */
function serverRoot(): string | null {
  const starts = [process.cwd(), dirname(fileURLToPath(import.meta.url))];
  for (const start of starts) {
    let dir = resolve(start);
    for (;;) {
      if (existsSync(join(dir, 'apps/server/src/migrate.ts'))) return dir;
      const parent = dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  return null;
}

function runServerScript(script: string, args: string[]): Promise<void> {
  const root = serverRoot();
  if (!root) {
    throw new CliError(
      `This needs the SmartSpace server installation: run it inside the server's repository (it runs apps/server/src/${script}).`,
      'cli.server_required',
    );
  }
  return new Promise((done, fail) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join('apps/server/src', script), ...args],
      {
        cwd: root,
        stdio: 'inherit',
      },
    );
    // Ctrl-C reaches the child through the terminal; this process just waits for its exit.
    const ignore = () => {};
    process.on('SIGINT', ignore);
    child.once('error', (err) => {
      process.off('SIGINT', ignore);
      fail(new CliError(`Could not start ${script}: ${err.message}`));
    });
    child.once('exit', (code, signal) => {
      process.off('SIGINT', ignore);
      if (code === 0) done();
      else {
        // The script has printed its own reason; pass its exit status on.
        process.exitCode = code ?? (signal ? 1 : 1);
        done();
      }
    });
  });
}

export function registerOps(program: Command): void {
  const db = program.command('db').description('server database (no running server needed)');
  db.command('migrate')
    .description('apply pending migrations to DATABASE_URL (or the embedded database)')
    .action(() => runServerScript('migrate.ts', []));

  const mail = program.command('mail').description('server mail (no running server needed)');
  mail
    .command('outbox [count] [email]')
    .description('print the newest mail kept in the outbox (when SMTP_URL is unset)')
    .action((count: string | undefined, email: string | undefined) => {
      if (count !== undefined && !/^\d+$/.test(count)) {
        throw new UsageError('count takes a whole number from 1 to 1000');
      }
      return runServerScript('mail-outbox.ts', [count ?? '5', ...(email ? [email] : [])]);
    });
}
