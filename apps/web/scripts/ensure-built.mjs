#!/usr/bin/env node
// Builds the web app when apps/web/dist is missing or older than its sources, so
// `pnpm install && pnpm start` serves a current app; a fresh dist costs one hash of the sources.
// A stamp in dist holds the hash of everything the bundle is made from. A failed build never
// stops the caller: the server then starts with the API alone (and says so).
//   node scripts/ensure-built.mjs           build if stale
//   node scripts/ensure-built.mjs --force   always build
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const web = join(dirname(fileURLToPath(import.meta.url)), '..');
const repo = join(web, '..', '..');
const dist = join(web, 'dist');
const stampFile = join(dist, '.build-stamp');

// What the bundle is made of: the app, its config, and the client package bundled into it.
const INPUTS = [
  join(web, 'src'),
  join(web, 'index.html'),
  join(web, 'vite.config.ts'),
  join(web, 'package.json'),
  join(repo, 'packages', 'client', 'src'),
  join(repo, 'pnpm-lock.yaml'),
];

function files(path) {
  if (!existsSync(path)) return [];
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .filter((e) => !e.name.endsWith('.test.ts'))
    .flatMap((e) => files(join(path, e.name)));
}

export function sourceHash() {
  const hash = createHash('sha256');
  for (const file of INPUTS.flatMap(files).sort()) {
    hash.update(relative(repo, file));
    hash.update('\0');
    hash.update(readFileSync(file));
    hash.update('\0');
  }
  return hash.digest('hex');
}

function fresh(hash) {
  if (!existsSync(join(dist, 'index.html')) || !existsSync(stampFile)) return false;
  return readFileSync(stampFile, 'utf8').trim() === hash;
}

const force = process.argv.includes('--force');
const hash = sourceHash();
if (!force && fresh(hash)) process.exit(0);

console.log('web: building the web app (apps/web/dist)…');
const vite = join(web, 'node_modules', 'vite', 'bin', 'vite.js');
if (!existsSync(vite)) {
  console.warn(
    'web: vite is not installed (run `pnpm install`); the server will serve the API only',
  );
  process.exit(force ? 1 : 0);
}
const started = Date.now();
const result = spawnSync(process.execPath, [vite, 'build', '--logLevel', 'warn'], {
  cwd: web,
  stdio: 'inherit',
});
if (result.status !== 0) {
  console.warn('web: the build failed; the server will serve the API only');
  process.exit(force ? 1 : 0);
}
writeFileSync(stampFile, `${hash}\n`);
console.log(`web: built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
