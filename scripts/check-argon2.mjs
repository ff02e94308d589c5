// Postinstall guard: argon2 ships prebuilt binaries, and on some machines the prebuilt one
// segfaults instead of failing cleanly. Hash once in a child process; if it dies, rebuild
// the addon from source (needs python3, make and a C++ compiler) and check again.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

const require = createRequire(new URL('../packages/api/package.json', import.meta.url));
const probe = `require('argon2').hash('probe',{type:2,memoryCost:19456,timeCost:2,parallelism:1})
  .then(h=>require('argon2').verify(h,'probe')).then(ok=>process.exit(ok?0:3),()=>process.exit(4))`;

function works() {
  const r = spawnSync(process.execPath, ['-e', probe], { cwd: dirname(require.resolve('argon2')) });
  return r.status === 0;
}

if (works()) process.exit(0);
console.warn('argon2: the installed binary does not work here; rebuilding from source');
const dir = dirname(require.resolve('argon2/package.json'));
const r = spawnSync('npx', ['--yes', 'node-gyp', 'rebuild'], { cwd: dir, stdio: 'inherit' });
if (r.status !== 0 || !works()) {
  console.error('argon2: rebuilding from source failed; install python3, make and g++');
  process.exit(1);
}
