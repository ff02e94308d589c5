import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@smartspace/api/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The production build (scripts/build.mjs) as `pnpm start` runs it: compiled once, then
 * started with plain `node`, no TypeScript at run time. It must find what its sources find
 * next to themselves (migrations, the docs, swagger's files) and the packages in
 * node_modules, and build again only when a source changed.
 */
const serverDir = join(import.meta.dirname, '..');
const dist = join(serverDir, 'dist');

function buildScript(...args: string[]) {
  return spawnSync(process.execPath, ['scripts/build.mjs', ...args], {
    cwd: serverDir,
    encoding: 'utf8',
    timeout: 120_000,
  });
}

describe('the production build', () => {
  beforeAll(() => {
    const built = buildScript();
    expect(built.status, built.stderr).toBe(0);
  }, 120_000);

  it('compiles to JavaScript that imports nothing as TypeScript', () => {
    const js = readdirSync(dist).filter((f) => f.endsWith('.js'));
    expect(js).toEqual(expect.arrayContaining(['server.js', 'migrate.js', 'mail-outbox.js']));
    for (const file of js) {
      const text = readFileSync(join(dist, file), 'utf8');
      expect(text).not.toMatch(/from "[^"]*\.ts"/);
      expect(text).not.toContain('@smartspace/api');
    }
  });

  it('builds again only when a source changed', () => {
    const again = buildScript('--if-stale');
    expect(again.status).toBe(0);
    expect(again.stdout).toBe('');
  });

  describe('started with node', () => {
    let child: ReturnType<typeof spawn>;
    let origin = '';
    let output = '';

    beforeAll(async () => {
      const port = await freePort();
      origin = `http://127.0.0.1:${port}`;
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        NODE_ENV: 'test',
        PORT: String(port),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
        DATA_DIR: mkdtempSync(join(tmpdir(), 'smartspace-dist-')),
      };
      // The embedded database: nothing to set up, and migrations run from the source tree.
      delete env.DATABASE_URL;
      child = spawn(process.execPath, [join(dist, 'server.js')], { cwd: serverDir, env });
      child.stdout?.on('data', (d) => {
        output += String(d);
      });
      child.stderr?.on('data', (d) => {
        output += String(d);
      });
      const deadline = Date.now() + 90_000;
      while (Date.now() < deadline) {
        if (child.exitCode !== null) throw new Error(`the server exited: ${output}`);
        const ok = await fetch(`${origin}/health`).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`no /health within 90 s: ${output}`);
    }, 120_000);

    afterAll(async () => {
      if (child && child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
    });

    it('serves the API with its migrations applied, the docs and swagger', async () => {
      expect((await fetch(`${origin}/ready`)).status).toBe(200);
      const registered = await fetch(`${origin}/trpc/auth.register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          email: `dist-${Date.now()}@example.com`,
          password: 'correct horse battery staple',
          name: 'Dist',
        }),
      });
      expect(registered.status).toBe(200);
      const docs = await fetch(`${origin}/docs`);
      expect(docs.status).toBe(200);
      expect(await docs.text()).toContain('swagger');
      const spec = await fetch(`${origin}/docs/openapi.json`);
      expect(spec.status).toBe(200);
    });

    it('serves the web app when it is built', async () => {
      const webBuilt = existsSync(join(serverDir, '..', 'web', 'dist', 'index.html'));
      const res = await fetch(`${origin}/`);
      if (webBuilt) {
        expect(res.status).toBe(200);
        expect(await res.text()).toContain('<div id="root">');
      } else {
        expect(res.status).toBe(404);
      }
    });

    it('stops cleanly on SIGTERM', async () => {
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }, 30_000);
  });
});
