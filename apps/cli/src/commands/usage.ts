import type { Command } from 'commander';
import { resolveProject, withClient } from '../context';
import { parseInstant } from '../dates';
import { UsageError } from '../errors';
import { printJson, printRecord, printTable, toCsv } from '../output';

const GROUPS = ['day', 'model', 'agent', 'member'] as const;
type Group = (typeof GROUPS)[number];
const PERIODS = ['day', 'week', 'month', 'total'] as const;
type Period = (typeof PERIODS)[number];
const SCOPES = ['project', 'agent', 'member'] as const;
type Scope = (typeof SCOPES)[number];

const DAY_MS = 86_400_000;

function oneOf<T extends string>(value: string, allowed: readonly T[], flag: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`${flag} takes one of ${allowed.join(', ')}; not "${value}"`);
}

interface UsageOptions {
  by: string;
  from?: string;
  to?: string;
  csv?: boolean;
}

export function registerUsage(program: Command): void {
  program
    .command('usage')
    .description("a project's model usage and spend, grouped (last 30 days by default)")
    .option('--by <group>', `group by ${GROUPS.join('|')}`, 'day')
    .option('--from <date>', 'start (inclusive), YYYY-MM-DD or ISO time')
    .option('--to <date>', 'end (exclusive), YYYY-MM-DD or ISO time; default now')
    .option('--csv', 'print CSV')
    .action((o: UsageOptions, cmd: Command) => {
      const groupBy = oneOf<Group>(o.by, GROUPS, '--by');
      const to = o.to ? parseInstant(o.to, '--to') : new Date().toISOString();
      const from = o.from
        ? parseInstant(o.from, '--from')
        : new Date(Date.parse(to) - 30 * DAY_MS).toISOString();
      if (from >= to) throw new UsageError('--from must be before --to');
      return withClient(cmd, async (ctx) => {
        const projectId = await resolveProject(ctx, ctx.opts.project);
        const rows = await ctx.client.usage.summary.query({ projectId, from, to, groupBy });
        if (ctx.opts.json) return printJson(rows);
        const head = [groupBy, 'requests', 'input tokens', 'output tokens', 'cost'];
        const cells = rows.map((r) => [r.key, r.requests, r.inputTokens, r.outputTokens, r.cost]);
        if (o.csv) process.stdout.write(toCsv(head, cells));
        else printTable(head, cells);
      });
    });
}

interface SetOptions {
  amount: string;
  period: string;
  scope: string;
  scopeId?: string;
  alertAt?: string;
}

export function registerBudgets(program: Command): void {
  const budgets = program.command('budgets').description("a project's balance and spend limits");
  budgets
    .command('get')
    .description('balance, limits and this month’s spend')
    .action((_o, cmd: Command) =>
      withClient(cmd, async (ctx) => {
        const projectId = await resolveProject(ctx, ctx.opts.project);
        const b = await ctx.client.budgets.get.query({ projectId });
        if (ctx.opts.json) return printJson(b);
        printRecord({
          balance: b.balance,
          reserved: b.reserved,
          'spent this month': b.spentThisPeriod,
        });
        printTable(
          ['limit id', 'scope', 'scope id', 'period', 'amount', 'spent', 'alerts at'],
          b.limits.map((l) => [
            l.id,
            l.scope,
            l.scopeId,
            l.period,
            l.amount,
            l.spent,
            l.alertAt.join(', '),
          ]),
        );
      }),
    );
  budgets
    .command('set')
    .description('set (or replace) a spend limit')
    .requiredOption('--amount <usdc>', 'limit in USDC, e.g. 25.00')
    .option('--period <period>', PERIODS.join('|'), 'month')
    .option('--scope <scope>', SCOPES.join('|'), 'project')
    .option('--scope-id <id>', 'the agent or member an agent/member limit is for')
    .option('--alert-at <fractions>', 'comma-separated alert thresholds, e.g. 0.5,0.9')
    .action((o: SetOptions, cmd: Command) => {
      const period = oneOf<Period>(o.period, PERIODS, '--period');
      const scope = oneOf<Scope>(o.scope, SCOPES, '--scope');
      const alertAt = o.alertAt?.split(',').map((s) => Number(s.trim()));
      if (alertAt?.some((n) => !(n > 0 && n <= 1))) {
        throw new UsageError('--alert-at takes fractions in (0, 1], e.g. 0.5,0.9');
      }
      return withClient(cmd, async (ctx) => {
        const projectId = await resolveProject(ctx, ctx.opts.project);
        const limit = await ctx.client.budgets.setLimit.mutate({
          projectId,
          scope,
          scopeId: o.scopeId,
          period,
          amount: o.amount,
          alertAt,
        });
        if (ctx.opts.json) return printJson(limit);
        printRecord({
          id: limit.id,
          scope: limit.scope,
          period: limit.period,
          amount: limit.amount,
        });
      });
    });
}
