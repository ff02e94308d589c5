/**
 * The packed package as a project outside this repo gets it: `pnpm pack`, install the tarball
 * into a scratch project in the temp directory, type-check a consumer under NodeNext and
 * bundler resolution, then run it against a real server process.
 */

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  createTestDatabase,
  freePort,
  TEST_JWT_SECRET,
  type TestDatabase,
} from '@smartspace/api/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const clientDir = resolve(import.meta.dirname, '..');
const serverDir = resolve(clientDir, '../../apps/server');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; a non-zero exit is a result here, not an exception. */
function run(
  cmd: string,
  args: string[],
  opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<Run> {
  return new Promise((done, fail) => {
    execFile(
      cmd,
      args,
      {
        cwd: opts.cwd,
        env: opts.env ?? process.env,
        timeout: opts.timeoutMs ?? 240_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          fail(new Error(`${cmd} ${args.join(' ')}: ${error.message}\n${stdout}\n${stderr}`));
          return;
        }
        done({ code: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
  });
}

async function mustRun(cmd: string, args: string[], cwd: string): Promise<string> {
  const r = await run(cmd, args, { cwd });
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

interface Server {
  origin: string;
  child: ChildProcess;
  exited: Promise<unknown>;
}

/** The real server (apps/server/src/server.ts) on a free port; PGlite when no database URL. */
async function startServer(databaseUrl: string | null, dataDir: string): Promise<Server> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: 'test',
    PORT: String(port),
    JWT_SECRET: TEST_JWT_SECRET,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    RATE_LIMIT_PER_MINUTE: '0',
  };
  // The offline mock model answers: no key, no default pointing elsewhere.
  delete env.ANTHROPIC_API_KEY;
  delete env.DEFAULT_MODEL;
  delete env.DATABASE_URL;
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: serverDir,
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise((done) => child.once('exit', done));
  const origin = `http://127.0.0.1:${port}`;
  // tsx compiles the server at start: on a loaded 2-core machine that alone can take 30 s.
  const deadline = Date.now() + 90_000;
  for (;;) {
    const ready = await fetch(`${origin}/ready`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ready) return { origin, child, exited };
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error('the server did not start');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

const CONSUMER_PACKAGE = {
  name: 'smartspace-client-consumer',
  private: true,
  type: 'module',
  dependencies: { ws: '^8.23.0' },
  devDependencies: {
    typescript: '~5.9.3',
    '@types/node': '^20.19.0',
    '@types/ws': '^8.18.2',
  },
};

/**
 * Node's own resolution, as a published package is used, and no skipLibCheck: the bundled
 * declarations must check too. DOM stays in lib because @trpc/client's typings name
 * RequestInfo.
 */
const NODENEXT = {
  compilerOptions: {
    target: 'ES2022',
    lib: ['ES2023', 'DOM'],
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    skipLibCheck: false,
    types: ['node'],
    outDir: 'dist',
  },
  include: ['src/chat.ts'],
};

/** What bundler-based apps (Vite, Next.js) use. */
const BUNDLER = {
  compilerOptions: {
    target: 'ES2022',
    lib: ['ES2023', 'DOM'],
    module: 'ESNext',
    moduleResolution: 'bundler',
    strict: true,
    skipLibCheck: false,
    esModuleInterop: true,
    types: ['node'],
    noEmit: true,
  },
  include: ['src/chat.ts'],
};

/**
 * Wrong on purpose, one mistake a line: each must be reported, which `any` types would not.
 * Line numbers matter: the assertions name them.
 */
const WRONG = `import { createClient, type RouterInputs, type Session } from '@smartspace/client';
const client = createClient({ url: 'http://127.0.0.1:1/trpc' });
export const badInput = client.projects.create.mutate({ name: 42 });
export const noSuchProcedure = client.projects.rename.mutate({ name: 'x' });
export const badOutput = async (s: Session): Promise<number> => s.user.email;
export const missingField: RouterInputs['chat']['send'] = { conversationId: 'c' };
export const badSocket = createClient({ url: 'http://x/trpc', WebSocket: Date });
`;

describe('the packed package, used from outside the workspace', () => {
  let scratch = '';
  let database: TestDatabase | null = null;
  let server: Server | null = null;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'smartspace-client-consumer-'));
    // prepack builds dist/ first.
    await mustRun('pnpm', ['pack', '--pack-destination', scratch], clientDir);
    const tarball = await tarballName(scratch);
    if (!tarball) throw new Error('pnpm pack wrote no tarball');
    const pkg = {
      ...CONSUMER_PACKAGE,
      dependencies: {
        ...CONSUMER_PACKAGE.dependencies,
        '@smartspace/client': `file:./${tarball}`,
      },
    };
    await writeFile(join(scratch, 'package.json'), JSON.stringify(pkg, null, 2));
    await writeFile(join(scratch, 'tsconfig.json'), JSON.stringify(NODENEXT, null, 2));
    await writeFile(join(scratch, 'tsconfig.bundler.json'), JSON.stringify(BUNDLER, null, 2));
    await writeFile(
      join(scratch, 'tsconfig.wrong.json'),
      JSON.stringify({ ...NODENEXT, include: ['src/wrong.ts'] }, null, 2),
    );
    await mkdir(join(scratch, 'src'));
    await copyFile(join(import.meta.dirname, 'consumer/chat.ts'), join(scratch, 'src/chat.ts'));
    await writeFile(join(scratch, 'src/wrong.ts'), WRONG);
    // The workspace's store makes this mostly offline.
    // No lockfile here: CI makes pnpm default to --frozen-lockfile, which would refuse.
    await mustRun(
      'pnpm',
      ['install', '--prefer-offline', '--ignore-workspace', '--no-frozen-lockfile'],
      scratch,
    );
  }, 600_000);

  afterAll(async () => {
    if (server && server.child.exitCode === null) {
      const { child, exited } = server;
      child.kill('SIGTERM');
      // A shutdown that hangs must not hang the suite.
      const stuck = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(stuck);
    }
    await database?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }, 60_000);

  it('holds only dist/ and package.json, and depends on tRPC alone', async () => {
    const listing = await mustRun('tar', ['tzf', (await tarballName(scratch)) ?? ''], scratch);
    expect(listing.trim().split('\n').sort()).toEqual([
      'package/dist/index.d.ts',
      'package/dist/index.js',
      'package/dist/index.js.map',
      'package/package.json',
    ]);
    const installed = JSON.parse(
      await readFile(join(scratch, 'node_modules/@smartspace/client/package.json'), 'utf8'),
    ) as { dependencies: Record<string, string>; exports: unknown };
    expect(Object.keys(installed.dependencies).sort()).toEqual(['@trpc/client', '@trpc/server']);
    expect(installed.exports).toEqual({
      '.': { types: './dist/index.d.ts', import: './dist/index.js' },
    });
    // Nothing of the server came along.
    const store = await readdir(join(scratch, 'node_modules/.pnpm'));
    const serverOnly = store.filter((d) =>
      /^(@smartspace\+api|drizzle-orm|postgres|fastify|@electric-sql|argon2)@/.test(d),
    );
    expect(serverOnly).toEqual([]);
  });

  it("is the README's TypeScript example, word for word", async () => {
    const readme = await readFile(resolve(clientDir, '../../README.md'), 'utf8');
    const example = await readFile(join(import.meta.dirname, 'consumer/chat.ts'), 'utf8');
    expect(readme).toContain(`\`\`\`ts\n${example}\`\`\``);
  });

  it('type-checks the consumer under NodeNext and bundler resolution', async () => {
    const tsc = join(scratch, 'node_modules/.bin/tsc');
    const nodeNext = await run(tsc, ['-p', 'tsconfig.json'], { cwd: scratch });
    expect(nodeNext.stdout + nodeNext.stderr).toBe('');
    expect(nodeNext.code).toBe(0);
    const bundler = await run(tsc, ['-p', 'tsconfig.bundler.json'], { cwd: scratch });
    expect(bundler.stdout + bundler.stderr).toBe('');
    expect(bundler.code).toBe(0);
  });

  it('reports type errors in procedure inputs, outputs and names: the types are real', async () => {
    const tsc = join(scratch, 'node_modules/.bin/tsc');
    const r = await run(tsc, ['-p', 'tsconfig.wrong.json', '--pretty', 'false'], { cwd: scratch });
    expect(r.code).not.toBe(0);
    const errors = r.stdout
      .split('\n')
      .filter((l) => l.includes('error TS'))
      .map((l) => /^src\/wrong\.ts\((\d+),\d+\): error (TS\d+)/.exec(l)?.slice(1).join(' '));
    expect(errors).toEqual([
      '3 TS2322', // name: number where the input wants a string
      '4 TS2339', // projects.rename does not exist
      '5 TS2322', // user.email is a string, not a number
      '6 TS2741', // chat.send needs content
      '7 TS2739', // Date is no WebSocket class
    ]);
  });

  it('registers, creates a project and a conversation, and streams a reply over WebSocket', async () => {
    await mustRun(join(scratch, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], scratch);
    database = process.env.TEST_DATABASE_URL ? await createTestDatabase() : null;
    server = await startServer(database?.url ?? null, join(scratch, 'data'));
    const r = await run(process.execPath, ['dist/chat.js'], {
      cwd: scratch,
      env: { ...process.env, SMARTSPACE_URL: `${server.origin}/trpc` },
      // closeClient must let the process end by itself.
      timeoutMs: 120_000,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^signed in as demo-\d+@example\.com$/);
    expect(lines[1]).toBe('reply: Echo: Hello from outside the monorepo');
    expect(lines[2]).toMatch(/^status: complete, [1-9]\d* output tokens$/);
    expect(lines[3]).toBe('refused: request.invalid');
    expect(lines).toHaveLength(4);
  }, 240_000);
});

async function tarballName(dir: string): Promise<string | undefined> {
  const [tarball] = (await readdir(dir)).filter((f) => f.endsWith('.tgz'));
  return tarball;
}
