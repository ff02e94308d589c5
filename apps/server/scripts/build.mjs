#!/usr/bin/env node
// Compiles the server and the workspace packages it runs (@smartspace/api) to JavaScript in
// apps/server/dist, so production starts with `node`, compiling nothing at run time.
//   node scripts/build.mjs            build
//   node scripts/build.mjs --if-stale build only when the sources changed since the last build
//
// One esbuild bundle per entry point holds the workspace sources; packages from node_modules
// stay external, each import rewritten to the file esbuild resolved from the importing
// source's own directory (pnpm links a package only where it is a dependency, so they
// could not be found again from dist), as a path relative to dist so a moved checkout works.
// Sources that find files next to themselves (migrations, docs, the web app) get their own
// `import.meta.url`, the source file's, so those paths do not change in the bundle.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const server = join(dirname(fileURLToPath(import.meta.url)), '..');
const repo = join(server, '..', '..');
const outdir = join(server, 'dist');
const stampFile = join(outdir, '.build-stamp');
const ENTRIES = ['src/server.ts', 'src/migrate.ts', 'src/mail-outbox.ts'];

// What the bundles are made of: both packages' sources and the dependency versions.
const INPUTS = [
  join(server, 'src'),
  join(server, 'package.json'),
  join(server, 'scripts', 'build.mjs'),
  join(repo, 'packages', 'api', 'src'),
  join(repo, 'packages', 'api', 'package.json'),
  join(repo, 'pnpm-lock.yaml'),
];

function files(path) {
  if (!existsSync(path)) return [];
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .filter((e) => !(e.name.endsWith('.test.ts') || e.name === 'testing'))
    .flatMap((e) => files(join(path, e.name)));
}

export function sourceHash() {
  const hash = createHash('sha256');
  // The checkout's place too: dist refers to node_modules by relative path.
  hash.update(repo);
  for (const file of INPUTS.flatMap(files).sort()) {
    hash.update(relative(repo, file));
    hash.update('\0');
    hash.update(readFileSync(file));
    hash.update('\0');
  }
  return hash.digest('hex');
}

const isWorkspace = (path) => !path.split(sep).includes('node_modules');

/** Resolved node_modules imports stay external, by relative path from dist. */
const externals = {
  name: 'externals',
  setup(b) {
    b.onResolve({ filter: /^[^./]|^\.\.?\/.*node_modules/ }, async (args) => {
      if (args.path.startsWith('node:') || args.pluginData === 'resolving') return undefined;
      if (args.path.startsWith('@smartspace/')) return undefined;
      const resolved = await b.resolve(args.path, {
        resolveDir: args.resolveDir,
        kind: args.kind,
        importer: args.importer,
        pluginData: 'resolving',
      });
      if (resolved.errors.length > 0) return { errors: resolved.errors };
      if (!resolved.path || isWorkspace(resolved.path)) return undefined;
      let path = relative(outdir, resolved.path).split(sep).join('/');
      if (!path.startsWith('.')) path = `./${path}`;
      return { path, external: true };
    });
    // Builtins (fs, crypto…) named without `node:`.
    b.onResolve({ filter: /^[a-z_]+$/ }, () => undefined);
  },
};

/** Each workspace source keeps its own location for `import.meta.url`. */
const ownUrl = {
  name: 'own-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (!isWorkspace(args.path)) return undefined;
      const source = await readFile(args.path, 'utf8');
      if (!source.includes('import.meta.')) return undefined;
      if (/import\.meta\.(dirname|filename)/.test(source)) {
        return { errors: [{ text: 'use import.meta.url (the build keeps it per source file)' }] };
      }
      const rel = relative(outdir, args.path).split(sep).join('/');
      const url = `new URL(${JSON.stringify(rel)}, import.meta.url).href`;
      return { contents: source.replaceAll('import.meta.url', url), loader: 'ts' };
    });
  },
};

export async function buildServer() {
  const started = Date.now();
  await build({
    absWorkingDir: server,
    entryPoints: ENTRIES.map((e) => join(server, e)),
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: true,
    logLevel: 'warning',
    plugins: [externals, ownUrl],
    // Some bundled CommonJS-minded code calls require(); give ESM one.
    banner: {
      js: "import { createRequire as __ssRequire } from 'node:module'; const require = __ssRequire(import.meta.url);",
    },
  });
  return Date.now() - started;
}

const isMain = process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url;
if (isMain) {
  const hash = sourceHash();
  const built = existsSync(join(outdir, 'server.js')) && existsSync(stampFile);
  if (
    process.argv.includes('--if-stale') &&
    built &&
    readFileSync(stampFile, 'utf8').trim() === hash
  ) {
    process.exit(0);
  }
  console.log('server: compiling to apps/server/dist…');
  try {
    const ms = await buildServer();
    writeFileSync(stampFile, `${hash}\n`);
    console.log(`server: built in ${(ms / 1000).toFixed(1)} s`);
  } catch (err) {
    console.error('server: the build failed:', err instanceof Error ? err.message : err);
    process.exit(1);
  }
}
