import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  createProject,
  ensureBuilt,
  launchBrowser,
  registerUser,
  type Server,
  signedInContext,
  snapsIn,
  startServer,
  unnamedControlsOn,
} from './harness';

/** Machine credentials and the account, as a person manages them in the browser. */

const PASSWORD = 'correct horse battery staple';
const EMAIL = 'linus@example.com';

let server: Server;
let browser: Browser;
let page: Page;
const snap = snapsIn('keys');

beforeAll(async () => {
  ensureBuilt();
  server = await startServer();
  await registerUser(server.origin, { email: EMAIL, name: 'Linus', password: PASSWORD });
  browser = await launchBrowser();
  ({ page } = await signedInContext(browser, server.origin, {
    email: EMAIL,
    password: PASSWORD,
  }));
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

/** A call with an API key, as an internal tool makes it. */
async function withKey(secret: string, path: string, input: unknown) {
  const res = await fetch(
    `${server.origin}/trpc/${path}?input=${encodeURIComponent(JSON.stringify(input))}`,
    { headers: { authorization: `Bearer ${secret}` } },
  );
  return res.status;
}

describe('keys and account, in Chromium', () => {
  test('rename yourself; create an API key, use its secret, revoke it', async () => {
    await page.goto('/account');
    await page.getByRole('textbox', { name: 'Your name' }).fill('Linus T.');
    await page.getByRole('button', { name: 'Save name' }).click();
    // The header follows the stored session.
    await expect.poll(() => page.getByRole('link', { name: 'Linus T.' }).count()).toBe(1);

    await page.goto('/projects');
    const projectId = await createProject(page, 'Tools');
    await page.goto(`/projects/${projectId}/settings`);
    const keys = page.getByRole('region', { name: 'API keys' });
    await keys.getByRole('textbox', { name: 'Key name' }).fill('ci-bot');
    await keys.getByRole('combobox', { name: 'Key role' }).selectOption('viewer');
    await keys.getByRole('button', { name: 'Create key' }).click();
    const shown = keys.getByRole('status', { name: 'New key secret' });
    await shown.waitFor();
    const secret = ((await shown.locator('code').textContent()) ?? '').trim();
    expect(secret).toMatch(/^ssk_/);
    expect(await unnamedControlsOn(page)).toEqual([]);
    await snap(page, 'key-created');

    // The secret works for the project, as a viewer: reading yes, writing no.
    expect(await withKey(secret, 'projects.get', { projectId })).toBe(200);
    const write = await fetch(`${server.origin}/trpc/chat.conversations.create`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ projectId }),
    });
    expect(write.status).toBe(403);
    // Listed without its secret.
    const row = keys.getByRole('table', { name: 'Keys' }).getByRole('row', { name: /ci-bot/ });
    expect(await row.textContent()).toMatch(/viewer.*never.*active/);
    expect(await keys.getByRole('table', { name: 'Keys' }).textContent()).not.toContain(secret);

    page.once('dialog', (d) => void d.accept());
    await row.getByRole('button', { name: 'Revoke ci-bot' }).click();
    await expect.poll(() => row.textContent()).toMatch(/revoked/);
    expect(await withKey(secret, 'projects.get', { projectId })).toBe(401);
    await snap(page, 'key-revoked');
  });
});
