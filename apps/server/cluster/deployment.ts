import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, freePort, type TestDatabase } from '@smartspace/api/testing';

/**
 * The deployment of deploy/: N compiled server processes (`node dist/server.js`, as
 * `pnpm start` runs them) on one PostgreSQL and one Redis, behind HAProxy configured by
 * deploy/haproxy.cfg itself, all on loopback.
 */

const serverDir = join(import.meta.dirname, '..');
const haproxyConfig = join(serverDir, '..', '..', 'deploy', 'haproxy.cfg');
export const JWT_SECRET = 'cluster-test-secret-that-is-long-enough-0123456789';

async function waitFor(
  what: string,
  ok: () => Promise<boolean>,
  ms: number,
  gone: () => boolean = () => false,
): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (gone()) throw new Error(`${what}: the process exited`);
    if (await ok().catch(() => false)) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

export interface ServerProcess {
  name: string;
  port: number;
  child: ChildProcess;
  exited: Promise<number | string | null>;
}

export interface Deployment {
  /** The load balancer's origin: every client request goes here. */
  origin: string;
  database: TestDatabase;
  servers: ServerProcess[];
  /** SIGKILLs a server, as a crash would. */
  kill(name: string): Promise<void>;
  /** Starts a killed server again on its port; resolves when it is ready. */
  restart(name: string): Promise<void>;
  /** Resolves when HAProxy routes to `name` again (its health checks passed). */
  routed(name: string): Promise<number>;
  close(): Promise<void>;
}

export interface DeploymentOptions {
  instances: number;
  redisUrl: string;
  env?: Record<string, string>;
}

export async function startDeployment(opts: DeploymentOptions): Promise<Deployment> {
  const database = await createTestDatabase();
  if (!database.url) throw new Error('the cluster test needs PostgreSQL: set TEST_DATABASE_URL');
  const databaseUrl = database.url;
  const ports = await Promise.all(Array.from({ length: opts.instances }, () => freePort()));
  const servers: ServerProcess[] = [];

  const spawnServer = async (name: string, port: number): Promise<ServerProcess> => {
    const child = spawn(process.execPath, ['dist/server.js'], {
      cwd: serverDir,
      env: {
        ...process.env,
        NODE_ENV: 'production',
        HOST: '127.0.0.1',
        PORT: String(port),
        DATABASE_URL: databaseUrl,
        REDIS_URL: opts.redisUrl,
        JWT_SECRET,
        TRUST_PROXY: 'true',
        MOCK_MODEL_ENABLED: 'true',
        LOG_LEVEL: 'error',
        DATA_DIR: mkdtempSync(join(tmpdir(), `smartspace-${name}-`)),
        ...opts.env,
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const exited = new Promise<number | string | null>((resolve) =>
      child.once('exit', (code, signal) => resolve(code ?? signal)),
    );
    await waitFor(
      `${name} ready`,
      async () => (await fetch(`http://127.0.0.1:${port}/ready`)).ok,
      60_000,
      () => child.exitCode !== null,
    );
    return { name, port, child, exited };
  };

  const listen = await freePort();
  const origin = `http://127.0.0.1:${listen}`;
  let haproxy: ChildProcess | null = null;
  try {
    for (const [i, port] of ports.entries()) {
      servers.push(await spawnServer(`smartspace-${i + 1}`, port));
    }
    const env: NodeJS.ProcessEnv = { ...process.env, LISTEN: `127.0.0.1:${listen}` };
    for (const [i, port] of ports.entries()) env[`SMARTSPACE_${i + 1}`] = `127.0.0.1:${port}`;
    haproxy = spawn('haproxy', ['-db', '-f', haproxyConfig], { env, stdio: 'ignore' });
    const proxy = haproxy;
    await waitFor(
      'HAProxy routing',
      async () => (await fetch(`${origin}/ready`)).ok,
      20_000,
      () => proxy.exitCode !== null,
    );
  } catch (err) {
    for (const s of servers) s.child.kill('SIGKILL');
    haproxy?.kill('SIGKILL');
    await database.close();
    throw err;
  }
  const proxy = haproxy;

  const find = (name: string) => {
    const s = servers.find((x) => x.name === name);
    if (!s) throw new Error(`no server ${name}`);
    return s;
  };
  /** Which servers answer through the proxy: a few requests, by X-Served-By. */
  const answering = async (): Promise<Set<string>> => {
    const seen = new Set<string>();
    for (let i = 0; i < servers.length * 3; i++) {
      const res = await fetch(`${origin}/health`);
      const by = res.headers.get('x-served-by');
      if (res.ok && by) seen.add(by);
    }
    return seen;
  };

  return {
    origin,
    database,
    servers,
    async kill(name) {
      const s = find(name);
      s.child.kill('SIGKILL');
      await s.exited;
    },
    async restart(name) {
      const s = find(name);
      const again = await spawnServer(name, s.port);
      servers.splice(servers.indexOf(s), 1, again);
    },
    routed: (name) => waitFor(`${name} routed`, async () => (await answering()).has(name), 30_000),
    async close() {
      proxy.kill('SIGTERM');
      for (const s of servers) {
        if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGTERM');
      }
      await Promise.all(servers.map((s) => s.exited));
      await database.close();
    },
  };
}

export { freePort };
