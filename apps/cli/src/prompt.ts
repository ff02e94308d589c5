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
