import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ensureBuilt, launchBrowser, type Server, snapsIn, startServer } from './harness';

/** This file's screenshots, under test-results/admin/. */
const snap = snapsIn('admin');

const PASSWORD = 'correct horse battery staple';

let server: Server;
let browser: Browser;

/** A tRPC mutation over HTTP, as the API's own clients send it. */
async function call<T>(path: string, input: unknown, token?: string): Promise<T> {
  const res = await fetch(`${server.origin}/trpc/${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify(input),
  });
  const body = (await res.json()) as { result?: { data: T }; error?: unknown };
  if (!res.ok || !body.result) throw new Error(`${path}: ${JSON.stringify(body.error)}`);
  return body.result.data;
}

async function register(email: string, name: string): Promise<{ token: string; id: string }> {
  const s = await call<{ accessToken: string; user: { id: string } }>('auth.register', {
    email,
    name,
    password: PASSWORD,
  });
  return { token: s.accessToken, id: s.user.id };
}

async function signIn(ctx: BrowserContext, email: string): Promise<Page> {
  const page = await ctx.newPage();
  await page.goto('/sign-in');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/projects');
  return page;
}

/** Goes to `path` inside the running app, as a link or the address bar's history would. */
async function openInApp(page: Page, path: string): Promise<void> {
  await page.evaluate((to) => {
    window.history.pushState({}, '', to);
    window.dispatchEvent(new PopStateEvent('popstate'));
  }, path);
  await page.waitForURL(`**${path}`);
}

beforeAll(async () => {
  ensureBuilt();
  // No DEPOSIT_ADDRESS: deposits are off. ops@ is an admin by ADMIN_EMAILS, not by being first.
  server = await startServer({ ADMIN_EMAILS: 'ops@example.com' });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe('platform admin pages in Chromium', () => {
  test('users, deactivation signing an open tab out, audit log and its chain, manual credit; non-admins kept out', async () => {
    await register('root@example.com', 'First Account');
    await register('ops@example.com', 'Olga Ops');
    const user = await register('user@example.com', 'Uma User');
    const project = await call<{ id: string }>('projects.create', { name: 'Zephyr' }, user.token);
    // Enough history for the audit log to need a second page.
    for (let i = 0; i < 50; i++) {
      await call('projects.update', { projectId: project.id, name: `Zephyr ${i}` }, user.token);
    }
    await call('projects.update', { projectId: project.id, name: 'Zephyr' }, user.token);

    // A plain user: no admin link, a plain refusal at the admin URL, deposits off on billing.
    const userCtx = await browser.newContext({
      baseURL: server.origin,
      viewport: { width: 1280, height: 800 },
    });
    const userPage = await signIn(userCtx, 'user@example.com');
    await userPage.goto(`/projects/${project.id}/billing`);
    await userPage.getByText('Deposits are off').waitFor();
    expect(await userPage.getByRole('button', { name: 'I sent it' }).count()).toBe(0);
    expect(await userPage.getByLabel('Balance').textContent()).toBe('0.000000 USDC');
    expect(await userPage.getByRole('link', { name: 'Admin', exact: true }).count()).toBe(0);
    await snap(userPage, 'billing-deposits-off');
    // Typed into the app's router (the server does not serve /admin/* as an app route yet,
    // so a full load there is its 404; see apps/server/src/plugins/web.ts APP_ROUTES).
    await openInApp(userPage, '/admin/users');
    await userPage.getByRole('heading', { name: 'Not allowed' }).waitFor();
    expect(await userPage.getByRole('table', { name: 'Users' }).count()).toBe(0);
    await snap(userPage, 'admin-not-allowed');
    // The user's tab stays open on the billing page, which polls the server.
    await userPage.goto(`/projects/${project.id}/billing`);
    await userPage.getByLabel('Balance').waitFor();

    const adminCtx = await browser.newContext({
      baseURL: server.origin,
      viewport: { width: 1280, height: 800 },
    });
    const admin = await signIn(adminCtx, 'ops@example.com');
    await admin.getByRole('link', { name: 'Admin', exact: true }).click();
    await admin.waitForURL('**/admin/users');
    const users = admin.getByRole('table', { name: 'Users' });
    await users.getByText('user@example.com').waitFor();
    expect(await users.getByRole('row').count()).toBe(4); // header + three accounts
    // Admins cannot change their own account; the page offers no control for it.
    expect(await admin.getByLabel('Platform role of ops@example.com').count()).toBe(0);
    await snap(admin, 'admin-users');

    // Search.
    await admin.getByRole('searchbox', { name: 'Search users' }).fill('uma');
    await admin.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => users.getByRole('row').count()).toBe(2);
    await users.getByText('user@example.com').waitFor();

    // Role change, and back.
    const role = admin.getByLabel('Platform role of user@example.com');
    await role.selectOption('admin');
    await expect.poll(() => role.inputValue()).toBe('admin');
    await role.selectOption('user');
    await expect.poll(() => role.inputValue()).toBe('user');

    // Deactivate: the user's open tab is signed out, and signing in again is refused.
    await admin.getByRole('button', { name: 'Deactivate user@example.com' }).click();
    await admin.getByRole('button', { name: 'Reactivate user@example.com' }).waitFor();
    expect(await users.getByText('deactivated').count()).toBe(1);
    await userPage.waitForURL('**/sign-in', { timeout: 30_000 });
    expect(await userPage.getByRole('status').textContent()).toContain('session ended');
    await userPage.getByLabel('Email').fill('user@example.com');
    await userPage.getByLabel('Password').fill(PASSWORD);
    await userPage.getByRole('button', { name: 'Sign in' }).click();
    await userPage.getByRole('alert').filter({ hasText: 'disabled' }).waitFor();

    // Reactivate: signing in works again.
    await admin.getByRole('button', { name: 'Reactivate user@example.com' }).click();
    await admin.getByRole('button', { name: 'Deactivate user@example.com' }).waitFor();
    await userPage.getByRole('button', { name: 'Sign in' }).click();
    await userPage.waitForURL('**/projects');

    // Audit log: newest first, filtered, paged, and its chain verified.
    await admin.getByRole('link', { name: 'Audit log' }).click();
    const events = admin.getByRole('table', { name: 'Audit events' });
    await events.getByText('users.reactivated').waitFor();
    await expect.poll(() => events.getByRole('row').count()).toBe(51); // header + one page
    await admin.getByRole('button', { name: 'Older events' }).click();
    await expect.poll(() => events.getByRole('row').count()).toBeGreaterThan(51);
    await admin.getByRole('button', { name: 'Verify chain' }).click();
    const verified = admin.getByRole('status').filter({ hasText: 'Chain intact' });
    await verified.waitFor();
    const checked = Number(/(\d+) events checked/.exec((await verified.textContent()) ?? '')?.[1]);
    expect(checked).toBeGreaterThan(55);
    await snap(admin, 'admin-audit', { fullPage: true });

    const filters = admin.getByRole('form', { name: 'Audit filters' });
    const apply = filters.getByRole('button', { name: 'Apply filters' });
    await filters.getByLabel('Action').fill('users.deactivated');
    await apply.click();
    await expect.poll(() => events.getByRole('row').count()).toBe(2);
    await events.getByText(/"sessionsEnded":[1-9]/).waitFor();
    // By actor (an email is looked up) and action: ops changed the role twice.
    await filters.getByLabel('Action').fill('users.role_changed');
    await filters.getByLabel('Actor (email or id)').fill('ops@example.com');
    await apply.click();
    await expect.poll(() => events.getByRole('row').count()).toBe(3);
    await filters.getByLabel('Actor (email or id)').fill('nobody@example.com');
    await apply.click();
    await admin.getByRole('alert').filter({ hasText: 'No user with the email' }).waitFor();
    // By project: its creation and 51 renames.
    await filters.getByRole('button', { name: 'Clear' }).click();
    await filters.getByLabel('Project (name or id)').fill(project.id);
    await filters.getByLabel('Action').fill('projects.created');
    await apply.click();
    await expect.poll(() => events.getByRole('row').count()).toBe(2);
    // A time range in the future holds nothing; one around now holds it.
    const local = (d: Date) =>
      new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
    await filters.getByLabel('From').fill(local(new Date(Date.now() + 3_600_000)));
    await apply.click();
    await admin.getByText('No events match.').waitFor();
    await filters.getByLabel('From').fill(local(new Date(Date.now() - 3_600_000)));
    await filters.getByLabel('Until').fill(local(new Date(Date.now() + 3_600_000)));
    await apply.click();
    await expect.poll(() => events.getByRole('row').count()).toBe(2);

    // Manual credit, with the server's validation, then seen by the project's member.
    await admin.getByRole('link', { name: 'Payments and credits' }).click();
    await admin.getByText('No unmatched deposits.').waitFor();
    const credit = admin.getByRole('form', { name: 'Manual credit' });
    await credit.getByLabel('Project to credit').fill(project.id);
    await credit.getByLabel('Amount (USDC)').fill('1.1234567');
    await credit.getByLabel('Reason').fill('Welcome credit');
    await credit.getByRole('button', { name: 'Credit project' }).click();
    await admin.getByRole('alert').filter({ hasText: 'at most 6 fractional digits' }).waitFor();
    await credit.getByLabel('Amount (USDC)').fill('5');
    await credit.getByRole('button', { name: 'Credit project' }).click();
    await admin
      .getByRole('status')
      .filter({ hasText: "Credited 5.000000 USDC: the project's balance is now 5.000000 USDC." })
      .waitFor();
    await snap(admin, 'admin-credit');
    await userPage.goto(`/projects/${project.id}/billing`);
    await expect.poll(() => userPage.getByLabel('Balance').textContent()).toBe('5.000000 USDC');

    // The credit is in the audit log with its reason.
    await admin.getByRole('link', { name: 'Audit log' }).click();
    await filters.getByLabel('Action').fill('payments.credited');
    await apply.click();
    await expect.poll(() => events.getByRole('row').count()).toBe(2);
    await admin.getByRole('button', { name: 'Verify chain' }).click();
    await admin.getByRole('status').filter({ hasText: 'Chain intact' }).waitFor();

    await userCtx.close();
    await adminCtx.close();
  });
});
