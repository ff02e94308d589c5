import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** The tests run the bundle that `pnpm pack` would ship, so it is built once first. */
export default function setup(): void {
  const require = createRequire(import.meta.url);
  const manifest = require.resolve('tsup/package.json');
  const { bin } = require('tsup/package.json') as { bin: Record<string, string> };
  execFileSync(process.execPath, [join(dirname(manifest), bin.tsup ?? 'dist/cli-default.js')], {
    cwd: join(import.meta.dirname, '..'),
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}
