#!/usr/bin/env node
// `pnpm dev`: the API (restarting on changes) and Vite's dev server in front of it, which
// proxies /trpc (WebSocket included), /files and /docs to the API. Open http://localhost:5173.
// Either process ending stops the other.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const web = join(dirname(fileURLToPath(import.meta.url)), '..');
const repo = join(web, '..', '..');
const apiPort = process.env.PORT ?? '3000';

const children = [
  spawn(
    process.execPath,
    [join(repo, 'node_modules', 'tsx', 'dist', 'cli.mjs'), 'watch', 'apps/server/src/server.ts'],
    {
      cwd: repo,
      stdio: 'inherit',
      env: { ...process.env, PORT: apiPort },
    },
  ),
  spawn(process.execPath, [join(web, 'node_modules', 'vite', 'bin', 'vite.js')], {
    cwd: web,
    stdio: 'inherit',
    env: { ...process.env, API_PORT: apiPort },
  }),
];

let stopping = false;
function stopAll(code) {
  if (stopping) return;
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  process.exitCode = code;
}
for (const child of children) child.once('exit', (code) => stopAll(code ?? 1));
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => stopAll(0));
