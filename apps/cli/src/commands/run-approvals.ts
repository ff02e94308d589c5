import type { RouterOutputs, RunEvent } from '@smartspace/client';
import type { Command } from 'commander';
import pc from 'picocolors';
import { type Ctx, withClient } from '../context';
import { CliError, describeError, UsageError } from '../errors';
import { note, printJson, printTable, shortDate, success } from '../output';
import { TerminalDialog } from '../prompt';

/**
 * Runs that wait for a person (issue 16): how `--follow` shows a pending approval and, in a
 * terminal, asks for the decision; and `runs approve|reject` for everyone else.
 */

type Run = RouterOutputs['runs']['get'];
type Approval = Run['approvals'][number];
type Requested = Extract<RunEvent, { type: 'approval.requested' }>;
type Decided = Extract<RunEvent, { type: 'approval.decided' }>;

function show(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** `in 23h 59m`, `in 4m`, or `overdue`: when the approval expires, from now. */
export function untilExpiry(iso: string, now = Date.now()): string {
  const minutes = Math.floor((new Date(iso).getTime() - now) / 60_000);
  if (minutes < 0) return 'overdue';
  if (minutes < 60) return `in ${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `in ${hours}h ${minutes % 60}m`;
  return `in ${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/** What waits: the tool and its input, or a model step and its worst-case cost. */
function what(a: { kind: string; tool: string | null; input?: unknown; cost: string | null }) {
  const cost = a.cost === null ? '' : pc.dim(` (up to ${a.cost} USDC)`);
  if (a.kind === 'tool' && a.tool) return `${a.tool} ${pc.dim(show(a.input))}${cost}`;
  return `model step${cost}`;
}

/** The lines `--follow` prints for an approval event (stdout, with the other events). */
export function describeApprovalEvent(e: Requested | Decided): string {
  if (e.type === 'approval.requested') {
    const expires = `expires ${shortDate(e.expiresAt)} UTC (${untilExpiry(e.expiresAt)})`;
    return (
      `${pc.yellow('⏸ approval needed:')} ${what(e)}\n` +
      pc.dim(`  approval ${e.approvalId} · ${expires}`)
    );
  }
  const verdict = e.decision === 'approved' ? pc.green('✔ approved') : pc.red('✗ rejected');
  const why = e.note ? ` — ${e.note}` : '';
  return `${verdict}${why} ${pc.dim(`(approval ${e.approvalId}, by ${e.by})`)}`;
}

/** The exact commands that decide an approval, for whoever watches without a terminal. */
function howToDecide(ctx: Ctx, runId: string, approvalId: string): string {
  const url = ctx.opts.url ? ` --url ${ctx.url}` : '';
  return [
    'Waiting for a decision. Approve or reject with:',
    `  smartspace runs approve ${runId} ${approvalId}${url} [--note <text>]`,
    `  smartspace runs reject ${runId} ${approvalId}${url} [--note <text>]`,
  ].join('\n');
}

/**
 * The approvals a followed run asks for, one at a time. Each is checked against `runs.get`
 * first: replayed history holds requests decided long ago, and someone else may decide while
 * we ask (then the question is withdrawn). In a terminal it asks; otherwise it prints the
 * commands to run elsewhere. Failures (a role too low, a decision made meanwhile) are shown
 * and following goes on: another person may still decide.
 */
export class ApprovalDesk {
  private readonly queue: Requested[] = [];
  private readonly settled = new Set<string>();
  private busy = false;
  private closed = false;
  private asking: { approvalId: string; dialog: TerminalDialog } | null = null;

  constructor(
    private readonly ctx: Ctx,
    private readonly runId: string,
    private readonly opts: { interactive: boolean; onInterrupt: () => void },
  ) {}

  requested(e: Requested): void {
    this.queue.push(e);
    void this.work();
  }

  /** A decision, ours or someone else's: it is not asked (any more). */
  decided(e: Decided): void {
    this.settled.add(e.approvalId);
    if (this.asking?.approvalId === e.approvalId) this.withdraw();
  }

  /** The run ended (or following stopped): nothing is left to ask. */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.withdraw();
  }

  private withdraw(): void {
    if (!this.asking) return;
    this.asking.dialog.close();
    this.asking = null;
  }

  private async work(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (let e = this.queue.shift(); e && !this.closed; e = this.queue.shift()) {
        try {
          await this.handle(e);
        } catch (err) {
          this.fail(err);
        }
      }
    } finally {
      this.busy = false;
    }
  }

  private async pending(approvalId: string): Promise<Approval | null> {
    if (this.settled.has(approvalId)) return null;
    const run = await this.ctx.client.runs.get.query({ runId: this.runId });
    const a = run.approvals.find((x) => x.id === approvalId);
    return a?.status === 'pending' && !this.settled.has(approvalId) && !this.closed ? a : null;
  }

  private async handle(e: Requested): Promise<void> {
    const approval = await this.pending(e.approvalId);
    if (!approval) return;
    if (!this.opts.interactive) {
      if (!this.ctx.opts.json) note(howToDecide(this.ctx, this.runId, approval.id));
      return;
    }
    let interrupted = false;
    const dialog = new TerminalDialog(() => {
      interrupted = true;
      this.opts.onInterrupt();
    });
    this.asking = { approvalId: approval.id, dialog };
    try {
      const verdict = await this.askVerdict(dialog, approval);
      if (verdict === 'skip') return this.leave(approval);
      const text = verdict ? await dialog.ask(NOTE) : null;
      if (verdict === null || text === null) {
        // Withdrawn (decided elsewhere, the run ended) says nothing; Ctrl-D leaves it open.
        if (this.asking?.dialog === dialog && !interrupted) this.leave(approval);
        return;
      }
      dialog.close();
      this.asking = null;
      const input = { runId: this.runId, approvalId: approval.id, note: noteOf(text) };
      if (verdict === 'approve') await this.ctx.client.runs.approve.mutate(input);
      else await this.ctx.client.runs.reject.mutate(input);
    } finally {
      dialog.close();
      if (this.asking?.dialog === dialog) this.asking = null;
    }
  }

  private leave(a: Approval): void {
    note(pc.dim('Left undecided; still following.'));
    note(howToDecide(this.ctx, this.runId, a.id));
  }

  /** approve / reject / skip, or null when the question was withdrawn or input ended. */
  private async askVerdict(
    dialog: TerminalDialog,
    a: Approval,
  ): Promise<'approve' | 'reject' | 'skip' | null> {
    for (;;) {
      const answer = await dialog.ask(
        `Approve ${a.tool ?? 'this step'}? ${pc.bold('[y]')}es, ${pc.bold('[n]')}o (reject), ${pc.bold('[s]')}kip: `,
      );
      if (answer === null) return null;
      const word = answer.trim().toLowerCase();
      if (['y', 'yes', 'a', 'approve'].includes(word)) return 'approve';
      if (['n', 'no', 'r', 'reject'].includes(word)) return 'reject';
      if (['s', 'skip'].includes(word)) return 'skip';
    }
  }

  private fail(err: unknown): void {
    // Following has ended: whatever was still in flight no longer matters.
    if (this.closed) return;
    const d = describeError(err, this.ctx.url);
    const code = d.appCode ? pc.dim(` [${d.appCode}]`) : '';
    note(`${pc.red('Error:')} ${d.message}${code}`);
    note(
      pc.dim(
        d.appCode === 'runs.approval_closed'
          ? 'Someone else decided first; still following.'
          : 'Still following: someone else may decide.',
      ),
    );
  }
}

const NOTE = 'Note (optional, Enter for none): ';

function noteOf(text: string | undefined): string | undefined {
  const t = text?.trim();
  return t ? t : undefined;
}

/** The one pending approval of a run when none is named; several make the user choose. */
async function pickApproval(ctx: Ctx, runId: string, approvalId?: string): Promise<string> {
  if (approvalId) return approvalId;
  const run = await ctx.client.runs.get.query({ runId });
  const pending = run.approvals.filter((a) => a.status === 'pending');
  const [only] = pending;
  if (pending.length === 1 && only) return only.id;
  if (pending.length === 0) {
    throw new CliError(`Run ${runId} has no pending approval (it is ${run.status}).`);
  }
  const list = pending.map((a) => `  ${a.id}  ${a.tool ?? a.kind} ${show(a.input)}`).join('\n');
  throw new UsageError(`Run ${runId} has ${pending.length} pending approvals: name one.\n${list}`);
}

export function printApprovals(approvals: Approval[]): void {
  printTable(
    ['approval', 'step', 'status', 'expires', 'decided', 'note'],
    approvals.map((a) => [
      a.id,
      a.kind === 'tool' && a.tool ? `${a.tool} ${show(a.input)}` : what(a),
      a.status,
      a.status === 'pending'
        ? `${shortDate(a.expiresAt)} (${untilExpiry(a.expiresAt)})`
        : shortDate(a.expiresAt),
      a.decidedAt ? `${shortDate(a.decidedAt)} by ${a.decidedBy}` : '',
      a.note,
    ]),
  );
}

/** `runs approve` and `runs reject`. */
export function registerDecisions(runs: Command): void {
  for (const verdict of ['approve', 'reject'] as const) {
    runs
      .command(`${verdict} <runId> [approvalId]`)
      .description(
        verdict === 'approve'
          ? 'approve a step the run waits for (the only pending one unless named)'
          : 'reject a step the run waits for: the model is told, with the note',
      )
      .option('--note <text>', 'why (recorded, audited; a rejection’s note reaches the model)')
      .action((runId: string, approvalId: string | undefined, o: { note?: string }, cmd) =>
        withClient(cmd, async (ctx) => {
          const id = await pickApproval(ctx, runId, approvalId);
          const input = { runId, approvalId: id, note: noteOf(o.note) };
          const approval =
            verdict === 'approve'
              ? await ctx.client.runs.approve.mutate(input)
              : await ctx.client.runs.reject.mutate(input);
          if (ctx.opts.json) return printJson(approval);
          success(`${approval.status === 'approved' ? 'Approved' : 'Rejected'} ${what(approval)}`);
        }),
      );
  }
}
