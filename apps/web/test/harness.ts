import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createTestDatabase,
  freePort,
  TEST_JWT_SECRET,
  type TestDatabase,
} from '@smartspace/api/testing';
import type { BrowserContext } from 'playwright-core';
import { type Browser, chromium, type Page } from 'playwright-core';

const web = join(import.meta.dirname, '..');
const serverDir = join(web, '..', 'server');
export const RESULTS = join(web, 'test-results');

/** Chromium from CHROMIUM_PATH, else the first of the usual names on PATH. */
export function chromiumPath(): string {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try {
      return execFileSync('which', [name], { encoding: 'utf8' }).trim();
    } catch {
      // not this one
    }
  }
  throw new Error('No Chromium found: install it (apt-get install chromium) or set CHROMIUM_PATH');
}

/** Builds the app when its dist is missing or stale (see scripts/ensure-built.mjs). */
export function ensureBuilt(): void {
  execFileSync(process.execPath, [join(web, 'scripts', 'ensure-built.mjs')], { stdio: 'inherit' });
  if (!existsSync(join(web, 'dist', 'index.html'))) throw new Error('the web app did not build');
}

export interface Server {
  origin: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * apps/server/src/server.ts as deployed, serving the built app: on a fresh PostgreSQL
 * database when TEST_DATABASE_URL is set, else on PGlite in a temporary DATA_DIR.
 */
export async function startServer(env: Record<string, string> = {}): Promise<Server> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'smartspace-web-'));
  let db: TestDatabase | null = null;
  if (process.env.TEST_DATABASE_URL) db = await createTestDatabase();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: serverDir,
    env: {
      ...process.env,
      NODE_ENV: 'test',
      PORT: String(port),
      DATA_DIR: dataDir,
      JWT_SECRET: TEST_JWT_SECRET,
      LOG_LEVEL: 'warn',
      RATE_LIMIT_PER_MINUTE: '0',
      // No CORS_ORIGINS: the app's sockets come from the server's own origin, as after
      // `pnpm start`, and must be let through without configuration.
      ...(db?.url ? { DATABASE_URL: db.url } : {}),
      ...env,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 120_000;
  for (;;) {
    const ok = await fetch(`${origin}/ready`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      await db?.close();
      throw new Error('the server did not start');
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    origin,
    child,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        // A graceful shutdown waits for streams; the test has nothing left to lose.
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      await db?.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: ['--no-sandbox'],
  });
}

/**
 * Removes the files directly in test-results/ (e2e.test.ts's numbered screenshots), so they
 * are this run's. The folders of other test files (snapsIn) stay: whichever file runs last
 * must not wipe the others' screenshots.
 */
export function resetResults(): void {
  mkdirSync(RESULTS, { recursive: true });
  for (const entry of readdirSync(RESULTS, { withFileTypes: true })) {
    if (entry.isFile()) rmSync(join(RESULTS, entry.name), { force: true });
  }
}

let step = 0;
/** A full-page screenshot per step, numbered in order, under test-results/. */
export async function snap(
  page: Page,
  name: string,
  opts: { fullPage?: boolean } = {},
): Promise<void> {
  mkdirSync(RESULTS, { recursive: true });
  step += 1;
  await page.screenshot({
    path: join(RESULTS, `${String(step).padStart(2, '0')}-${name}.png`),
    // The whole scrollable page, not only the viewport: long pages such as billing.
    ...(opts.fullPage ? { fullPage: true } : {}),
  });
}

/**
 * Screenshots of one test file under test-results/<folder>/ (emptied first), numbered in
 * order, so files running one after another keep their own.
 */
export function snapsIn(
  folder: string,
): (page: Page, name: string, opts?: { fullPage?: boolean }) => Promise<void> {
  const dir = join(RESULTS, folder);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  let n = 0;
  return async (page, name, opts = {}) => {
    mkdirSync(dir, { recursive: true });
    n += 1;
    await page.screenshot({
      path: join(dir, `${String(n).padStart(2, '0')}-${name}.png`),
      ...(opts.fullPage ? { fullPage: true } : {}),
    });
  };
}

/** Registers an account through the API (the register page has its own test). */
export async function registerUser(
  origin: string,
  user: { email: string; name: string; password: string },
): Promise<void> {
  const res = await fetch(`${origin}/trpc/auth.register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(user),
  });
  if (res.status !== 200) throw new Error(`register ${user.email}: ${res.status}`);
}

/** Signs in on the sign-in page of a new tab of `context`; resolves on the projects page. */
export async function signInTab(
  context: BrowserContext,
  email: string,
  password: string,
): Promise<Page> {
  const p = await context.newPage();
  await p.goto('/sign-in');
  await p.getByLabel('Email').fill(email);
  await p.getByLabel('Password').fill(password);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.waitForURL('**/projects');
  return p;
}

/**
 * A browser context on `origin` (1280 × 900 unless told otherwise) with a tab signed in as
 * `email`: how most browser tests begin.
 */
export async function signedInContext(
  browser: Browser,
  origin: string,
  user: { email: string; password: string },
  options: Parameters<Browser['newContext']>[0] = {},
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({
    baseURL: origin,
    viewport: { width: 1280, height: 900 },
    ...options,
  });
  return { context, page: await signInTab(context, user.email, user.password) };
}

/** Creates a project from the projects page; resolves to its id, on its chat page. */
export async function createProject(page: Page, name: string): Promise<string> {
  await page.getByRole('textbox', { name: 'Project name' }).fill(name);
  await page.getByRole('button', { name: 'Create project' }).click();
  await page.waitForURL(/\/projects\/([^/]+)\/chat$/);
  return /\/projects\/([^/]+)\/chat$/.exec(page.url())?.[1] ?? '';
}

/**
 * Controls on the page without an accessible name, as Chromium's accessibility tree computes
 * it (the same check as e2e.test.ts's, for the other test files).
 */
export async function unnamedControlsOn(page: Page): Promise<string[]> {
  const cdp = await page.context().newCDPSession(page);
  try {
    const { nodes } = (await cdp.send('Accessibility.getFullAXTree')) as {
      nodes: { ignored: boolean; role?: { value: string }; name?: { value: string } }[];
    };
    const controls = new Set(['button', 'textbox', 'combobox', 'checkbox', 'link', 'searchbox']);
    return nodes
      .filter((n) => !n.ignored && controls.has(n.role?.value ?? '') && !n.name?.value?.trim())
      .map((n) => n.role?.value ?? '?');
  } finally {
    await cdp.detach();
  }
}
