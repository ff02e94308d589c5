/** Helpers both suites use: bench children (forked, IPC) and tRPC calls over HTTP. */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

/**
 * Forks a bench child (a .ts file next to this one, run through tsx) and waits for its first
 * IPC message, which must be its ready message. PostgreSQL when BENCH_DATABASE_URL or
 * TEST_DATABASE_URL is set (the child clones a test database), else in-memory PGlite.
 */
export async function startChild<Ready>(
  file: string,
  opts: { execArgv?: string[]; env?: Record<string, string> } = {},
): Promise<{ child: ChildProcess; ready: Ready }> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  const databaseUrl = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
  if (databaseUrl) env.TEST_DATABASE_URL = databaseUrl;
  const child = fork(fileURLToPath(new URL(file, import.meta.url)), {
    execArgv: [...(opts.execArgv ?? []), '--import', 'tsx'],
    env,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const ready = await new Promise<Ready>((resolve, reject) => {
      child.once('message', (m) => resolve(m as Ready));
      child.once('exit', (code) => reject(new Error(`${file} exited (${code}) before ready`)));
    });
    return { child, ready };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}

/** Disconnects the child (it closes its servers and drops its database), killing it if slow. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  if (child.connected) child.disconnect();
  else child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Calls a tRPC mutation over HTTP and returns its data, or throws. */
export async function mutate<T>(
  origin: string,
  path: string,
  input: unknown,
  token?: string,
): Promise<T> {
  const res = await fetch(`${origin}/trpc/${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify(input),
  });
  const body = (await res.json()) as { result?: { data: T }; error?: unknown };
  if (!res.ok || !body.result) throw new Error(`${path}: ${res.status} ${JSON.stringify(body)}`);
  return body.result.data;
}
