import { Command, CommanderError, Option } from 'commander';
import pc from 'picocolors';
import pkg from '../package.json' with { type: 'json' };
import { registerAdmin } from './commands/admin';
import { registerAgents, registerRuns } from './commands/agents';
import { registerAuth } from './commands/auth';
import { registerChat } from './commands/chat';
import { registerFiles } from './commands/files';
import { registerKeys } from './commands/keys';
import { registerOps } from './commands/ops';
import { registerProjects } from './commands/projects';
import { registerBudgets, registerUsage } from './commands/usage';
import { currentUrl } from './context';
import { cliEnv } from './env';
import { describeError, EXIT_OK, EXIT_USAGE } from './errors';

function buildProgram(): Command {
  const program = new Command('smartspace')
    .description('SmartSpace from the terminal: chat, agents, files, usage and administration')
    .version(pkg.version)
    .option('--json', 'print machine-readable JSON (for scripts)')
    .option('--debug', 'show stack traces on errors')
    .option('--url <url>', 'server URL (default: the one signed in to, or SMARTSPACE_URL)')
    .addOption(
      new Option(
        '-p, --project <id|name>',
        'project (default: SMARTSPACE_PROJECT, or your only one)',
      ),
    )
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      outputError: (text, write) => write(pc.red(text)),
    });
  registerAuth(program);
  registerProjects(program);
  registerChat(program);
  registerAgents(program);
  registerRuns(program);
  registerFiles(program);
  registerKeys(program);
  registerUsage(program);
  registerBudgets(program);
  registerAdmin(program);
  registerOps(program);
  // Every subcommand reports usage errors the same way (exit 2) instead of exiting itself.
  const override = (cmd: Command) => {
    for (const sub of cmd.commands) {
      sub.exitOverride();
      sub.configureOutput({ outputError: (text, write) => write(pc.red(text)) });
      override(sub);
    }
  };
  override(program);
  return program;
}

function report(err: unknown, argv: string[]): number {
  // Commander has already printed its own usage errors and help.
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  const d = describeError(err, currentUrl);
  const json = argv.includes('--json');
  if (json) {
    process.stderr.write(
      `${JSON.stringify({ error: { message: d.message, appCode: d.appCode ?? null } })}\n`,
    );
  } else {
    const code = d.appCode ? pc.dim(` [${d.appCode}]`) : '';
    process.stderr.write(`${pc.red('Error:')} ${d.message}${code}\n`);
  }
  if (argv.includes('--debug') && d.stack) process.stderr.write(`${pc.dim(d.stack)}\n`);
  return d.exitCode;
}

/**
 * `pnpm smartspace …` runs from the repository root; paths given on the command line mean
 * the directory the user typed it in, which the package manager passes as INIT_CWD.
 */
function restoreInvocationDir(): void {
  const dir = cliEnv.invokedFrom();
  if (dir) {
    try {
      process.chdir(dir);
    } catch {
      // Gone or unreadable: stay where the script runs.
    }
  }
}

async function main(): Promise<void> {
  restoreInvocationDir();
  const program = buildProgram();
  let code = EXIT_OK;
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    code = report(err, process.argv);
  }
  process.exit(process.exitCode && code === EXIT_OK ? Number(process.exitCode) : code);
}

await main();
