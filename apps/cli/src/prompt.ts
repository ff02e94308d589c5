import { createInterface, type Interface } from 'node:readline';
import { Writable } from 'node:stream';
import { CliError } from './errors';

/**
 * Questions asked on stderr, answers read from stdin: in a terminal with echo off for
 * secrets; from a pipe one line per answer (so scripts and tests can feed them).
 */
export class Prompter {
  private readonly rl: Interface;
  private readonly lines: string[] = [];
  private waiting: ((line: string | null) => void) | null = null;
  private closed = false;
  private muted = false;

  constructor() {
    const muted = () => this.muted;
    // Echo goes through here: a secret's keystrokes are swallowed, everything else is shown.
    const output = new Writable({
      write(chunk, _enc, done) {
        if (!muted()) process.stderr.write(chunk);
        done();
      },
    });
    this.rl = createInterface({
      input: process.stdin,
      output,
      terminal: Boolean(process.stdin.isTTY),
    });
    this.rl.on('line', (line) => {
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = null;
        w(line);
      } else this.lines.push(line);
    });
    this.rl.on('close', () => {
      this.closed = true;
      this.waiting?.(null);
    });
    this.rl.on('SIGINT', () => {
      this.rl.close();
    });
  }

  async ask(question: string, opts: { secret?: boolean } = {}): Promise<string> {
    process.stderr.write(question);
    this.muted = Boolean(opts.secret);
    const line = await this.next();
    if (opts.secret && process.stdin.isTTY) process.stderr.write('\n');
    this.muted = false;
    if (line === null) throw new CliError('Cancelled: no answer given.');
    return line;
  }

  private next(): Promise<string | null> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }

  close(): void {
    this.rl.close();
  }
}

/**
 * Questions in a terminal that events may overtake: `close` withdraws the open one (its
 * answer is null), e.g. when someone else decided meanwhile. Ctrl-C here calls `onInterrupt`,
 * as Ctrl-C anywhere else would raise SIGINT (readline holds the terminal in raw mode).
 */
export class TerminalDialog {
  private rl: Interface | null = null;
  private answer: ((line: string | null) => void) | null = null;
  private closedOnce = false;

  constructor(private readonly onInterrupt: () => void) {}

  ask(question: string): Promise<string | null> {
    const rl = this.open();
    if (!rl) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.answer = resolve;
      rl.question(question, (line) => this.settle(line));
    });
  }

  close(): void {
    const rl = this.rl;
    if (!rl) return;
    this.rl = null;
    // A question left open leaves its line unfinished: what follows starts on a new one.
    if (this.answer) process.stderr.write('\n');
    rl.close();
    this.settle(null);
  }

  private settle(line: string | null): void {
    const answer = this.answer;
    this.answer = null;
    answer?.(line);
  }

  private open(): Interface | null {
    if (this.rl) return this.rl;
    if (this.closedOnce) return null;
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    rl.on('close', () => {
      // Ctrl-D on an empty line, or the terminal gone: no answer.
      this.closedOnce = true;
      if (this.rl === rl) this.rl = null;
      this.settle(null);
    });
    rl.on('SIGINT', () => {
      this.close();
      this.onInterrupt();
    });
    this.rl = rl;
    return rl;
  }
}
