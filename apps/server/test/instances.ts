import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, freePort, TEST_JWT_SECRET } from '@smartspace/api/testing';
import { createClient, type SmartSpaceClient } from '@smartspace/client';
import postgres from 'postgres';
import { WebSocketImpl } from './sockets';

/**
 * Real server processes (src/server.ts, as deployed) on one PostgreSQL database. Needs a
 * PostgreSQL server (TEST_DATABASE_URL): PGlite is one process by design.
 */
export const multiInstanceEnabled = Boolean(process.env.TEST_DATABASE_URL);

export const PASSWORD = 'correct horse battery staple';

export interface Instance {
  origin: string;
  child: ChildProcess;
  /** Resolves with the exit code, or the signal's name when a signal ended the process. */
  exited: Promise<number | string | null>;
  /** A typed client of this instance; subscriptions go over its WebSocket. */
  client(): SmartSpaceClient;
}

/** Starts `src/server.ts` on a free port with `env` over the defaults; resolves when ready. */
export async function startInstance(
  databaseUrl: string,
  env: Record<string, string> = {},
): Promise<Instance> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: join(import.meta.dirname, '..'),
    env: {
      ...process.env,
      NODE_ENV: 'test',
      PORT: String(port),
      DATABASE_URL: databaseUrl,
      JWT_SECRET: TEST_JWT_SECRET,
      DATA_DIR: mkdtempSync(join(tmpdir(), 'smartspace-instance-')),
      LOG_LEVEL: 'warn',
      RATE_LIMIT_PER_MINUTE: '0',
      ...env,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<number | string | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal)),
  );
  const origin = `http://127.0.0.1:${port}`;
  // tsx compiles the server at start: on a loaded 2-core machine that alone can take 30 s.
  const deadline = Date.now() + 90_000;
  for (;;) {
    const ok = await fetch(`${origin}/ready`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error('instance did not start');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    origin,
    child,
    exited,
    client: () => createClient({ url: `${origin}/trpc`, WebSocket: WebSocketImpl }),
  };
}

export interface Cluster {
  a: Instance;
  b: Instance;
  /** The shared database's URL, for a process that recovers after a crash. */
  databaseUrl: string;
  close(): Promise<void>;
}

/** A fresh database (cloned from the migrated template) and two instances on it. */
export async function startCluster(env: Record<string, string> = {}): Promise<Cluster> {
  const db = await createTestDatabase();
  if (!db.url) throw new Error('needs PostgreSQL (TEST_DATABASE_URL)');
  const started = await Promise.allSettled([
    startInstance(db.url, env),
    startInstance(db.url, env),
  ]);
  const [a, b] = started.map((s) => (s.status === 'fulfilled' ? s.value : null));
  if (!a || !b) {
    // One failed to start: leave no process or database behind.
    for (const i of [a, b]) i?.child.kill('SIGKILL');
    await Promise.all([a?.exited, b?.exited]);
    await db.close();
    throw (started.find((s) => s.status === 'rejected') as PromiseRejectedResult).reason;
  }
  return {
    a,
    b,
    databaseUrl: db.url,
    async close() {
      for (const i of [a, b]) {
        if (i.child.exitCode === null && i.child.signalCode === null) i.child.kill('SIGKILL');
      }
      await Promise.all([a.exited, b.exited]);
      await db.close();
    },
  };
}

/** Kills an instance as a crash would: no shutdown hook runs, nothing is stored on the way out. */
export async function crash(instance: Instance): Promise<void> {
  if (instance.child.exitCode === null && instance.child.signalCode === null) {
    instance.child.kill('SIGKILL');
  }
  await instance.exited;
}

/**
 * Ages the heartbeats of work still in flight (streaming replies, running runs, in-progress
 * model calls, budget leases) by `ms`, as if that long had passed since their process died: the next process
 * to start sweeps them at start-up, without the test waiting out the sweepers' thresholds.
 * Only for work whose process is dead: a live one would be swept too.
 */
export async function ageHeartbeats(databaseUrl: string, ms: number): Promise<void> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  const age = `${ms} milliseconds`;
  try {
    await sql`update messages set heartbeat_at = heartbeat_at - ${age}::interval
      where status = 'streaming'`;
    await sql`update runs set heartbeat_at = heartbeat_at - ${age}::interval
      where status = 'running'`;
    await sql`update api_requests set heartbeat_at = heartbeat_at - ${age}::interval
      where status = 'in_progress'`;
    await sql`update gateway_leases set heartbeat_at = heartbeat_at - ${age}::interval`;
  } finally {
    await sql.end();
  }
}
