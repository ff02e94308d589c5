import type { RouterOutputs, RunEvent } from '@smartspace/client';
import type { Command } from 'commander';
import ora from 'ora';
import pc from 'picocolors';
import { type Ctx, isUuid, resolveProject, withClient } from '../context';
import { CliError, describeError, EXIT_INTERRUPTED, UsageError } from '../errors';
import { note, printJson, printRecord, printTable, shortDate, success } from '../output';
import {
  ApprovalDesk,
  describeApprovalEvent,
  printApprovals,
  registerDecisions,
} from './run-approvals';

type Run = RouterOutputs['runs']['get'];

const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);

/** `a, b ,c` → ['a', 'b', 'c']: the comma-separated lists of tool names. */
function names(list: string | undefined): string[] | undefined {
  return list
    ?.split(',')
    .map((t) => t.trim())
    .filter(Boolean);
}

function wholeNumber(text: string | undefined, flag: string): number | undefined {
  const n = text === undefined ? undefined : Number(text);
  if (n !== undefined && !Number.isInteger(n)) throw new UsageError(`${flag} takes a whole number`);
  return n;
}

function show(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** An agent of the project by id or name. */
async function resolveAgent(ctx: Ctx, ref: string): Promise<string> {
  if (isUuid(ref)) return ref;
  const projectId = await resolveProject(ctx, ctx.opts.project);
  const agents = await ctx.client.agents.list.query({ projectId });
  const match = agents.find((a) => a.name.toLowerCase() === ref.toLowerCase());
  if (!match) throw new CliError(`No agent named "${ref}" in this project.`, 'agents.not_found');
  return match.id;
}

export function registerAgents(program: Command): void {
  const agents = program.command('agents').description("the project's agents");
  agents
    .command('list')
    .description('list the agents of a project')
    .action((_o, cmd: Command) =>
      withClient(cmd, async (ctx) => {
        const projectId = await resolveProject(ctx, ctx.opts.project);
        const items = await ctx.client.agents.list.query({ projectId });
        if (ctx.opts.json) return printJson(items);
        printTable(
          ['id', 'name', 'model', 'tools', 'needs approval', 'status'],
          items.map((a) => [
            a.id,
            a.name,
            a.model,
            a.tools.join(', '),
            a.requiresApproval.join(', '),
            a.status,
          ]),
        );
      }),
    );
  agents
    .command('create <name>')
    .description('create an agent')
    .requiredOption('-i, --instructions <text>', 'system instructions')
    .requiredOption('--model <model>', 'model id (see the server’s models)')
    .option('-t, --tools <names>', 'comma-separated built-in tools, e.g. calculator,current_time')
    .option(
      '--requires-approval <names>',
      'comma-separated tools (of --tools) whose every call waits for a person’s approval',
    )
    .option('--max-steps <n>', 'most model steps per run')
    .action((name: string, o: AgentOptions & { instructions: string; model: string }, cmd) =>
      withClient(cmd, async (ctx) => {
        const projectId = await resolveProject(ctx, ctx.opts.project);
        const maxSteps = wholeNumber(o.maxSteps, '--max-steps');
        const agent = await ctx.client.agents.create.mutate({
          projectId,
          name,
          instructions: o.instructions,
          model: o.model,
          tools: names(o.tools),
          requiresApproval: names(o.requiresApproval),
          maxSteps,
        });
        if (ctx.opts.json) return printJson(agent);
        success(`Created agent ${agent.name}`);
        process.stdout.write(`${agent.id}\n`);
      }),
    );
  agents
    .command('update <agent>')
    .description('change an agent (id or name); what is not given stays as it is')
    .option('-i, --instructions <text>', 'system instructions')
    .option('--model <model>', 'model id')
    .option('-t, --tools <names>', 'comma-separated built-in tools (replaces the list)')
    .option(
      '--requires-approval <names>',
      'comma-separated tools whose calls wait for approval (replaces the list; "" for none)',
    )
    .option('--max-steps <n>', 'most model steps per run')
    .action((ref: string, o: AgentOptions & { instructions?: string; model?: string }, cmd) =>
      withClient(cmd, async (ctx) => {
        const maxSteps = wholeNumber(o.maxSteps, '--max-steps');
        const agentId = await resolveAgent(ctx, ref);
        const agent = await ctx.client.agents.update.mutate({
          agentId,
          instructions: o.instructions,
          model: o.model,
          tools: names(o.tools),
          requiresApproval: names(o.requiresApproval),
          maxSteps,
        });
        if (ctx.opts.json) return printJson(agent);
        success(`Updated agent ${agent.name}`);
      }),
    );
}

interface AgentOptions {
  tools?: string;
  requiresApproval?: string;
  maxSteps?: string;
}

/** Prints run events as they come; returns the run's final status. */
class RunPrinter {
  private midText = false;
  private cost = '0';

  constructor(private readonly json: boolean) {}

  event(e: RunEvent): void {
    if (this.json) {
      process.stdout.write(`${JSON.stringify(e)}\n`);
      return;
    }
    if (e.type === 'text.delta') {
      process.stdout.write(e.text);
      this.midText = true;
      return;
    }
    if (this.midText) process.stdout.write('\n');
    this.midText = false;
    const line = this.describe(e);
    if (line) process.stdout.write(`${line}\n`);
  }

  private describe(e: RunEvent): string | null {
    switch (e.type) {
      case 'run.started':
        return pc.dim('▶ run started');
      case 'step.started':
        return pc.bold(`step ${e.step}`);
      case 'tool.called':
        return `${pc.cyan('→')} ${e.tool} ${pc.dim(show(e.input))}`;
      case 'tool.result':
        return `${e.isError ? pc.red('✗') : pc.green('←')} ${e.tool}: ${show(e.output)}`;
      case 'handoff':
        return `${pc.yellow('⇄')} handoff ${e.fromAgentId} → ${e.toAgentId}`;
      case 'usage':
        this.cost = e.cost;
        return pc.dim(`  tokens ${e.inputTokens} in / ${e.outputTokens} out, cost ${e.cost}`);
      case 'approval.requested':
      case 'approval.decided':
        return describeApprovalEvent(e);
      case 'run.completed':
        return `${pc.green('✔ succeeded')}  output: ${show(e.output)}`;
      case 'run.failed':
        return `${pc.red('✗ failed')}  ${e.message} ${pc.dim(`[${e.appCode}]`)}`;
      case 'run.cancelled':
        return pc.yellow('■ cancelled');
      default:
        return null;
    }
  }
}

/**
 * Follows a run to its end and returns it. Subscribes from the topic's start so nothing
 * between `start` and the subscription is missed; where that history is past retention,
 * from now on (the final state is read afterwards either way).
 */
async function follow(ctx: Ctx, runId: string): Promise<Run> {
  const printer = new RunPrinter(Boolean(ctx.opts.json));
  await new Promise<void>((resolve, reject) => {
    let sub: { unsubscribe(): void } | null = null;
    const subscribe = (lastEventId: string | null) => {
      sub = ctx.client.runs.onProgress.subscribe(
        { runId, lastEventId },
        {
          onStarted: () => {
            // A run that ended before a live-only subscription started sends nothing more.
            if (lastEventId === null) {
              void ctx.client.runs.get.query({ runId }).then((r) => {
                if (FINISHED.has(r.status)) end();
                // The requests went out with the history that expired: they still wait.
                for (const a of r.approvals.filter((x) => x.status === 'pending')) {
                  const e = {
                    type: 'approval.requested' as const,
                    approvalId: a.id,
                    ...a,
                    input: a.input,
                  };
                  printer.event(e);
                  desk.requested(e);
                }
              }, reject);
            }
          },
          onData: (tracked) => {
            const e = tracked.data as RunEvent;
            const last =
              e.type === 'run.completed' || e.type === 'run.failed' || e.type === 'run.cancelled';
            // A question this event answers (or ends) is withdrawn before the event is shown.
            if (e.type === 'approval.decided') desk.decided(e);
            if (last) desk.close();
            printer.event(e);
            if (e.type === 'approval.requested') desk.requested(e);
            if (last) end();
          },
          onError: (err) => {
            if (lastEventId !== null && describeError(err).appCode === 'events.expired') {
              subscribe(null);
            } else {
              desk.close();
              sub?.unsubscribe();
              reject(err);
            }
          },
        },
      );
    };
    let cancelling = false;
    const onSigint = () => {
      // A second Ctrl-C does not wait for the server: leave now, the cancel is on its way.
      if (cancelling) process.exit(EXIT_INTERRUPTED);
      cancelling = true;
      if (!ctx.opts.json) note(pc.yellow('Cancelling the run…'));
      void ctx.client.runs.cancel.mutate({ runId }).catch(reject);
    };
    // In a terminal the person following decides; elsewhere they are told how to.
    const desk = new ApprovalDesk(ctx, runId, {
      interactive: Boolean(process.stdin.isTTY),
      onInterrupt: onSigint,
    });
    const end = () => {
      desk.close();
      process.off('SIGINT', onSigint);
      sub?.unsubscribe();
      resolve();
    };
    process.on('SIGINT', onSigint);
    subscribe('0');
  });
  return ctx.client.runs.get.query({ runId });
}

function exitFor(run: Run): void {
  if (run.status === 'failed' || run.status === 'cancelled') process.exitCode = 1;
}

function printRun(run: Run): void {
  printRecord({
    id: run.id,
    status: run.status,
    agent: run.agentId,
    input: run.input,
    output: run.output === null ? '' : show(run.output),
    error: run.error ? `${run.error.message} [${run.error.appCode}]` : '',
    tokens: `${run.usage.inputTokens} in / ${run.usage.outputTokens} out`,
    cost: run.cost,
    created: shortDate(run.createdAt),
    finished: shortDate(run.finishedAt),
  });
}

export function registerRuns(program: Command): void {
  const runs = program.command('runs').description('agent runs');
  runs
    .command('start <agent>')
    .description('start a run of an agent (id or name)')
    .requiredOption('-i, --input <text>', 'the task for the agent')
    .option('-f, --follow', 'show progress live and exit with the run’s outcome')
    .action((agentRef: string, o: { input: string; follow?: boolean }, cmd: Command) =>
      withClient(cmd, async (ctx) => {
        const agentId = await resolveAgent(ctx, agentRef);
        const started = await ctx.client.runs.start.mutate({ agentId, input: o.input });
        if (!o.follow) {
          if (ctx.opts.json) return printJson(started);
          success(`Run ${started.id} ${started.status}`);
          process.stdout.write(`${started.id}\n`);
          return;
        }
        if (!ctx.opts.json) note(pc.dim(`run ${started.id} (Ctrl-C cancels it)`));
        const run = await follow(ctx, started.id);
        // Events went out one per line: the finished run is one more line, not a block.
        if (ctx.opts.json) process.stdout.write(`${JSON.stringify(run)}\n`);
        else if (run.status === 'succeeded') note(pc.dim(`cost ${run.cost}`));
        exitFor(run);
      }),
    );
  runs
    .command('get <runId>')
    .description('show a run and its steps')
    .action((runId: string, _o, cmd: Command) =>
      withClient(cmd, async (ctx) => {
        const run = await ctx.client.runs.get.query({ runId });
        if (ctx.opts.json) return printJson(run);
        printRun(run);
        if (run.steps.length > 0) {
          printTable(
            ['#', 'kind', 'output', 'error', 'ms', 'cost'],
            run.steps.map((s) => [s.index, s.kind, show(s.output), s.error, s.durationMs, s.cost]),
          );
        }
        if (run.approvals.length > 0) printApprovals(run.approvals);
        if (run.approvals.some((a) => a.status === 'pending')) {
          note(pc.dim(`Decide with: smartspace runs approve|reject ${run.id} [--note <text>]`));
        }
      }),
    );
  runs
    .command('list')
    .description("list a project's recent runs")
    .option('--agent <agent>', 'only this agent’s runs (id or name)')
    .option('--limit <n>', 'how many', '20')
    .action((o: { agent?: string; limit: string }, cmd: Command) =>
      withClient(cmd, async (ctx) => {
        const limit = Number(o.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
          throw new UsageError('--limit takes a whole number from 1 to 100');
        }
        const projectId = await resolveProject(ctx, ctx.opts.project);
        const agentId = o.agent ? await resolveAgent(ctx, o.agent) : undefined;
        const page = await ctx.client.runs.list.query({ projectId, agentId, limit });
        if (ctx.opts.json) return printJson(page.items);
        printTable(
          ['id', 'status', 'agent', 'cost', 'created'],
          page.items.map((r) => [r.id, r.status, r.agentId, r.cost, shortDate(r.createdAt)]),
        );
      }),
    );
  registerDecisions(runs);
  runs
    .command('cancel <runId>')
    .description('cancel a queued or running run')
    .action((runId: string, _o, cmd: Command) =>
      withClient(cmd, async (ctx) => {
        const spinner = ctx.opts.json
          ? null
          : ora({ text: 'Cancelling', stream: process.stderr }).start();
        const run = await ctx.client.runs.cancel.mutate({ runId });
        spinner?.stop();
        if (ctx.opts.json) return printJson(run);
        success(`Run ${run.id} is ${run.status}`);
      }),
    );
}
