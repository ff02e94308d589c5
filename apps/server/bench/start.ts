/**
 * The start suite of `pnpm bench`: how long the production start takes, from spawning the
 * compiled server (`node apps/server/dist/server.js`, what `pnpm start` runs once the build
 * is current) to its first `/health` 200, on a cloned test database (PostgreSQL with
 * TEST_DATABASE_URL, else the embedded PGlite in a fresh data directory, which pays for its
 * first initialisation each time). Beside it, the same start through tsx from the
 * TypeScript sources, as `pnpm start` ran before the build existed.
 *
 * BENCH_START_RUNS (default 5) starts of each; the median is reported.
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, freePort } from '@smartspace/api/testing';
import { record } from './goals';
import { markdownTable } from './report';

const RUNS = Number(process.env.BENCH_START_RUNS ?? 5);
const serverDir = join(import.meta.dirname, '..');

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

/** Milliseconds from spawn to the first /health 200. */
async function timeStart(args: string[], databaseUrl: string | undefined): Promise<number> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: 'production',
    JWT_SECRET: 'bench-start-secret-that-is-long-enough-0123456789',
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'warn',
    DATA_DIR: mkdtempSync(join(tmpdir(), 'smartspace-start-')),
  };
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  else delete env.DATABASE_URL;
  const t0 = performance.now();
  const child = spawn(process.execPath, args, {
    cwd: serverDir,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr = (stderr + String(d)).slice(-2000);
  });
  try {
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) {
        throw new Error(`the server exited with ${child.exitCode}: ${stderr.trim()}`);
      }
      const ok = await fetch(`http://127.0.0.1:${port}/health`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) return performance.now() - t0;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('no /health 200 within 120 s');
  } finally {
    await stop(child);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

export async function runStart(): Promise<boolean> {
  const loadBefore = loadavg()[0] ?? 0;
  console.log('\nStart: building the server if stale, then timing its starts…');
  const built = spawnSync(process.execPath, ['scripts/build.mjs', '--if-stale'], {
    cwd: serverDir,
    stdio: 'inherit',
  });
  if (built.status !== 0) return false;
  const database = process.env.TEST_DATABASE_URL ? await createTestDatabase() : null;
  try {
    // Migrated once up front, as a deployment's database is: a start then only checks.
    const url = database?.url ?? undefined;
    const cases: Array<[string, string[]]> = [
      ['node dist/server.js (pnpm start, built)', ['dist/server.js']],
      ['tsx src/server.ts (TypeScript at run time)', ['--import', 'tsx', 'src/server.ts']],
    ];
    const rows: string[][] = [];
    let distMedian = Number.NaN;
    for (const [name, args] of cases) {
      const times: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        times.push(await timeStart(args, url));
        process.stdout.write('.');
      }
      const m = median(times);
      if (args[0] === 'dist/server.js') distMedian = m;
      rows.push([
        name,
        (m / 1000).toFixed(2),
        (Math.min(...times) / 1000).toFixed(2),
        (Math.max(...times) / 1000).toFixed(2),
      ]);
    }
    if (url) record('start.health', distMedian / 1000);
    const cpu = cpus();
    console.log(`

## SmartSpace start bench

node ${process.version} · ${cpu.length} CPU · load average before start ${loadBefore.toFixed(2)}
database: ${url ? 'PostgreSQL (cloned test database, migrated)' : 'PGlite in a fresh data directory each start (its first initialisation included)'}
${RUNS} starts each, from spawning the process to the first /health 200

${markdownTable(['start', 'median s', 'min s', 'max s'], [false, true, true, true], rows)}
${url ? '' : '\n- the goal (≤ 2 s) is stated for PostgreSQL: run with TEST_DATABASE_URL to check it.'}${
  loadBefore > cpu.length
    ? `\n- WARNING: load average ${loadBefore.toFixed(2)} on ${cpu.length} CPUs before the start: rerun on a quiet machine.`
    : ''
}`);
    return true;
  } finally {
    await database?.close();
  }
}
