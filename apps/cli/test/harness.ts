import { type ChildProcess, type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createTestDatabase,
  freePort,
  TEST_JWT_SECRET,
  type TestDatabase,
} from '@smartspace/api/testing';
import { closeClient, createClient } from '@smartspace/client';

export const CLI = join(import.meta.dirname, '../dist/cli.js');
export const SERVER_DIR = join(import.meta.dirname, '../../server');
export const PASSWORD = 'correct horse battery staple';
export const ADMIN_EMAIL = 'admin@example.com';

export interface Server {
  url: string;
  stop(): Promise<void>;
}

/**
 * A real server process (src/server.ts, as deployed) on a fresh database: a clone from
 * TEST_DATABASE_URL, or else its own embedded PGlite in a new data directory.
 */
export async function startServer(): Promise<Server> {
  const db: TestDatabase | null = process.env.TEST_DATABASE_URL ? await createTestDatabase() : null;
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: SERVER_DIR,
    env: {
      ...process.env,
      NODE_ENV: 'test',
      PORT: String(port),
      ...(db?.url ? { DATABASE_URL: db.url } : {}),
      JWT_SECRET: TEST_JWT_SECRET,
      DATA_DIR: mkdtempSync(join(tmpdir(), 'smartspace-cli-server-')),
      LOG_LEVEL: 'warn',
      RATE_LIMIT_PER_MINUTE: '0',
      ADMIN_EMAILS: ADMIN_EMAIL,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  // tsx compiles the server at start: on a loaded machine that alone can take a while.
  const deadline = Date.now() + 120_000;
  for (;;) {
    const ok = await fetch(`${url}/ready`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      await db?.close();
      throw new Error('server did not start');
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    url,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      await db?.close();
    },
  };
}

/** Registers a user straight through the API (the CLI has no sign-up). */
export async function register(url: string, email: string, name = 'Test User'): Promise<void> {
  const client = createClient({ url: `${url}/trpc` });
  try {
    await client.auth.register.mutate({ email, password: PASSWORD, name });
  } finally {
    await closeClient(client);
  }
}

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
}

/** Runs the built CLI as a user would; never throws on a non-zero exit. */
export function cli(configHome: string, args: string[], opts: RunOptions = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: opts.cwd ?? tmpdir(),
      env: cliEnv(configHome, opts.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`smartspace ${args.join(' ')} timed out\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

export function cliEnv(configHome: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_CONFIG_HOME: configHome, NO_COLOR: '1' };
  for (const k of ['SMARTSPACE_URL', 'SMARTSPACE_PROJECT', 'SMARTSPACE_API_KEY', 'FORCE_COLOR']) {
    delete env[k];
  }
  return { ...env, ...extra };
}

export function tempConfigHome(): string {
  return mkdtempSync(join(tmpdir(), 'smartspace-cli-config-'));
}

/** A stack trace line, which output must never carry without --debug. */
export const STACK_LINE = /^\s+at .+\(?.+:\d+:\d+\)?$/m;

export { freePort };

/** A CLI process the test talks to while it runs (a terminal, or a follower in the background). */
export interface Session {
  /** Everything it wrote, stdout and stderr interleaved (a terminal has only the one stream). */
  output(): string;
  stdout(): string;
  stderr(): string;
  type(text: string): void;
  waitFor(pattern: RegExp, ms?: number): Promise<void>;
  /** The exit code; fails (and kills the process) if it has not exited within `ms`. */
  exit(ms?: number): Promise<number | null>;
}

function session(child: ChildProcessWithoutNullStreams): Session {
  let out = '';
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    out += d;
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    out += d;
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  return {
    output: () => out,
    stdout: () => stdout,
    stderr: () => stderr,
    type: (text) => child.stdin.write(text),
    async exit(ms = 30_000) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`the CLI did not exit within ${ms} ms:\n${out}`));
        }, ms);
      });
      try {
        return await Promise.race([exited, late]);
      } finally {
        clearTimeout(timer);
      }
    },
    async waitFor(pattern, ms = 30_000) {
      const deadline = Date.now() + ms;
      while (!pattern.test(out)) {
        if (Date.now() > deadline || child.exitCode !== null) {
          child.kill('SIGKILL');
          throw new Error(`no ${pattern} in the output:\n${out}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

/**
 * The CLI in a real pseudo-terminal: util-linux `script` (in Debian's essential bsdutils, so
 * on every machine) runs it on a pty and relays our bytes as keystrokes, so Ctrl-C is the
 * terminal's \x03, not a signal we send.
 */
export function openTerminal(configHome: string, args: string[]): Session {
  const command = [process.execPath, CLI, ...args].map((a) => `'${a}'`).join(' ');
  return session(spawn('script', ['-qfec', command, '/dev/null'], { env: cliEnv(configHome) }));
}

/** The CLI without a terminal (stdin a closed pipe), left running while the test goes on. */
export function startCli(configHome: string, args: string[]): Session {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: tmpdir(),
    env: cliEnv(configHome),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.end();
  return session(child);
}
