import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import pc from 'picocolors';
import { type Ctx, isUuid, resolveProject, withClient } from '../context';
import { parseInstant } from '../dates';
import { CliError, UsageError } from '../errors';
import { printJson, printRecord, printTable, shortDate, success } from '../output';

const AMOUNT = /^\d+(\.\d{1,6})?$/;

/** A user by id or exact email (admins only: it searches the whole user list). */
async function resolveUser(ctx: Ctx, ref: string): Promise<string> {
  if (isUuid(ref)) return ref;
  const page = await ctx.client.users.list.query({ query: ref, limit: 100 });
  const match = page.items.find((u) => u.email.toLowerCase() === ref.toLowerCase());
  if (!match) throw new CliError(`No user with the email ${ref}.`, 'users.not_found');
  return match.id;
}

function limitOf(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 100) {
    throw new UsageError('--limit takes a whole number from 1 to 100');
  }
  return n;
}

function registerUsers(program: Command): void {
  const users = program.command('users').description('platform users (admins only)');
  users
    .command('list')
    .description('list users')
    .option('-q, --query <text>', 'filter by email or name')
    .option('--limit <n>', 'how many', '50')
    .action((o: { query?: string; limit: string }, cmd: Command) => {
      const limit = limitOf(o.limit);
      return withClient(cmd, async (ctx) => {
        const page = await ctx.client.users.list.query({ query: o.query, limit });
        if (ctx.opts.json) return printJson(page.items);
        printTable(
          ['id', 'email', 'name', 'role', 'active', 'created'],
          page.items.map((u) => [
            u.id,
            u.email,
            u.name,
            u.role,
            'active' in u ? String(u.active) : '',
            shortDate(u.createdAt),
          ]),
        );
      });
    });
  users
    .command('promote <user>')
    .description('make a user (id or email) a platform admin')
    .option('--demote', 'take the admin role away instead')
    .action((ref: string, o: { demote?: boolean }, cmd: Command) =>
      withClient(cmd, async (ctx) => {
        const userId = await resolveUser(ctx, ref);
        const role = o.demote ? 'user' : 'admin';
        const user = await ctx.client.users.setRole.mutate({ userId, role });
        if (ctx.opts.json) return printJson(user);
        success(`${user.email} is now ${role === 'admin' ? 'an admin' : 'a user'}`);
      }),
    );
  users
    .command('deactivate <user>')
    .description('block a user (id or email) from signing in')
    .option('--reactivate', 'let the user sign in again instead')
    .action((ref: string, o: { reactivate?: boolean }, cmd: Command) =>
      withClient(cmd, async (ctx) => {
        const userId = await resolveUser(ctx, ref);
        const active = Boolean(o.reactivate);
        const user = await ctx.client.users.setActive.mutate({ userId, active });
        if (ctx.opts.json) return printJson(user);
        success(`${user.email} is ${active ? 'active again' : 'deactivated'}`);
      }),
    );
}

function registerCredit(program: Command): void {
  program
    .command('credit <project> <amount>')
    .description('credit a project’s balance in USDC (admins only)')
    .requiredOption('-r, --reason <text>', 'why (kept in the ledger and audit log)')
    .option('--idempotency-key <key>', 'makes a retried credit apply once')
    .action(
      (
        ref: string,
        amount: string,
        o: { reason: string; idempotencyKey?: string },
        cmd: Command,
      ) => {
        if (!AMOUNT.test(amount) || Number(amount) <= 0) {
          throw new UsageError(`Not an amount: "${amount}" (a positive decimal, e.g. 12.50)`);
        }
        return withClient(cmd, async (ctx) => {
          const projectId = await resolveProject(ctx, ref);
          const entry = await ctx.client.payments.credit.mutate({
            projectId,
            amount,
            reason: o.reason,
            idempotencyKey: o.idempotencyKey ?? randomUUID(),
          });
          if (ctx.opts.json) return printJson(entry);
          success(`Credited ${amount} USDC to ${projectId}`);
        });
      },
    );
}

function registerAudit(program: Command): void {
  const audit = program.command('audit').description('the tamper-evident audit log');
  audit
    .command('list')
    .description('recent audit events (a project’s, or all for platform admins)')
    .option('--action <action>', 'only this action, e.g. users.role_changed')
    .option('--actor <userId>', 'only this actor')
    .option('--from <date>', 'from (inclusive)')
    .option('--to <date>', 'to (exclusive)')
    .option('--limit <n>', 'how many', '50')
    .action(
      (
        o: { action?: string; actor?: string; from?: string; to?: string; limit: string },
        cmd: Command,
      ) => {
        const limit = limitOf(o.limit);
        const from = o.from ? parseInstant(o.from, '--from') : undefined;
        const to = o.to ? parseInstant(o.to, '--to') : undefined;
        return withClient(cmd, async (ctx) => {
          const ref = ctx.opts.project;
          const projectId = ref ? await resolveProject(ctx, ref) : undefined;
          const page = await ctx.client.audit.list.query({
            projectId,
            actorId: o.actor,
            action: o.action,
            from,
            to,
            limit,
          });
          if (ctx.opts.json) return printJson(page.items);
          printTable(
            ['id', 'at', 'action', 'actor', 'project', 'target'],
            page.items.map((e) => [
              e.id,
              shortDate(e.at),
              e.action,
              e.actorId,
              e.projectId,
              e.target,
            ]),
          );
        });
      },
    );
  audit
    .command('verify')
    .description('check the hash chain of the whole log (admins only)')
    .action((_o, cmd: Command) =>
      withClient(cmd, async (ctx) => {
        const v = await ctx.client.audit.verify.query();
        if (ctx.opts.json) printJson(v);
        else if (v.ok) success(`Audit log intact (${v.checked} events checked)`);
        else process.stdout.write(`${pc.red('✗ broken')} at event ${v.firstBrokenId}\n`);
        if (!v.ok) throw new CliError('The audit log hash chain is broken.', 'audit.broken');
      }),
    );
}

function registerPayments(program: Command): void {
  const payments = program.command('payments').description('USDC deposits (admins only)');
  payments
    .command('unmatched')
    .description('deposits no project claimed')
    .option('--limit <n>', 'how many', '50')
    .action((o: { limit: string }, cmd: Command) => {
      const limit = limitOf(o.limit);
      return withClient(cmd, async (ctx) => {
        const page = await ctx.client.payments.unmatched.query({ limit });
        if (ctx.opts.json) return printJson(page.items);
        printTable(
          ['id', 'amount', 'from', 'tx', 'status', 'seen'],
          page.items.map((p) => [
            p.id,
            p.amount,
            p.from,
            p.txHash,
            p.status,
            shortDate(p.createdAt),
          ]),
        );
      });
    });
  payments
    .command('assign <paymentId> <project>')
    .description('credit an unmatched deposit to a project')
    .action((paymentId: string, ref: string, _o, cmd: Command) =>
      withClient(cmd, async (ctx) => {
        const projectId = await resolveProject(ctx, ref);
        const payment = await ctx.client.payments.assign.mutate({ paymentId, projectId });
        if (ctx.opts.json) return printJson(payment);
        printRecord({ payment: payment.id, project: payment.projectId, status: payment.status });
      }),
    );
}

export function registerAdmin(program: Command): void {
  registerUsers(program);
  registerCredit(program);
  registerAudit(program);
  registerPayments(program);
}
