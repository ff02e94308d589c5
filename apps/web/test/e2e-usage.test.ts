import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  createProject,
  ensureBuilt,
  launchBrowser,
  registerUser,
  type Server,
  signedInContext,
  signInTab,
  snapsIn,
  startServer,
  unnamedControlsOn,
} from './harness';

const PASSWORD = 'correct horse battery staple';

let server: Server;
let browser: Browser;
let page: Page;
let projectUrl: string;
const snap = snapsIn('usage');

beforeAll(async () => {
  ensureBuilt();
  // The mock model at 0.001 USDC per output token, replies capped at 100 tokens: a chat
  // call holds 0.1 USDC before it runs and costs a few thousandths after.
  server = await startServer({
    MODEL_PRICES: JSON.stringify({ 'mock-echo': { input: '0', output: '1000' } }),
    CHAT_MAX_OUTPUT_TOKENS: '100',
  });
  browser = await launchBrowser();
  await registerUser(server.origin, { email: 'ada@example.com', name: 'Ada', password: PASSWORD });
  await registerUser(server.origin, { email: 'vic@example.com', name: 'Vic', password: PASSWORD });
  ({ page } = await signedInContext(
    browser,
    server.origin,
    { email: 'ada@example.com', password: PASSWORD },
    { acceptDownloads: true },
  ));
  page.on('dialog', (d) => void d.accept());
  projectUrl = `/projects/${await createProject(page, 'Ledger')}`;
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

const limitRows = () => page.getByRole('table', { name: 'Budget limits' }).locator('tbody tr');

async function ask(question: string) {
  await page.getByRole('textbox', { name: 'Message' }).fill(question);
  await page.getByRole('textbox', { name: 'Message' }).press('Enter');
}

describe('budgets, usage and policy in Chromium', () => {
  test('a limit that affords one call: the second is refused, and an alert toast shows', async () => {
    await page.goto(`${projectUrl}/budgets`);
    await page.getByText('Balance', { exact: true }).waitFor();
    expect(await limitRows().count()).toBe(0);

    // Bad input: the client's word on thresholds, the server's on the amount.
    await page.getByRole('textbox', { name: 'Amount (USDC)' }).fill('0.1');
    await page.getByRole('textbox', { name: /Alert at/ }).fill('1, 150');
    expect(await page.getByRole('alert').textContent()).toContain('"150" is not a percentage');
    expect(await page.getByRole('button', { name: 'Save limit' }).isDisabled()).toBe(true);
    await page.getByRole('textbox', { name: /Alert at/ }).fill('1, 50');
    await page.getByRole('textbox', { name: 'Amount (USDC)' }).fill('0.1234567');
    await page.getByRole('button', { name: 'Save limit' }).click();
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toMatch(/at most 6 fractional digits/);

    // A day limit of 0.1 USDC: one call's hold fits, a second one's does not.
    await page.getByRole('combobox', { name: 'Period' }).selectOption('day');
    await page.getByRole('textbox', { name: 'Amount (USDC)' }).fill('0.1');
    await page.getByRole('button', { name: 'Save limit' }).click();
    await expect.poll(() => limitRows().count()).toBe(1);
    expect(await limitRows().first().textContent()).toMatch(/project limit per day: 0\.1/);
    expect(await limitRows().first().textContent()).toContain('1%, 50%');

    await page.getByRole('link', { name: 'Chat' }).click();
    await page.getByRole('button', { name: 'New chat' }).click();
    await page.waitForURL(/\/chat\/[0-9a-f-]{36}$/);
    await ask('Hello there');
    const reply = page.getByRole('listitem', { name: 'Assistant message' }).last();
    await expect
      .poll(() => reply.getAttribute('data-status'), { timeout: 30_000 })
      .toBe('complete');
    // The first reply's cost crosses the 1% threshold: a toast, live from budgets.onAlert.
    const toast = page.getByRole('list', { name: 'Budget alerts' }).getByRole('status');
    await toast.first().waitFor({ timeout: 30_000 });
    expect(await toast.first().textContent()).toMatch(
      /1% of the project limit per day used \(0\.00\d+ of 0\.1 USDC\)/,
    );

    await ask('Hello again');
    await page
      .getByText(/budget for this period is spent/)
      .first()
      .waitFor({ timeout: 30_000 });
    await snap(page, 'budget-refused');

    // The limit's bar shows the spend of the day.
    await page.goto(`${projectUrl}/budgets`);
    await expect
      .poll(() => limitRows().first().locator('td').nth(1).textContent())
      .toMatch(/0\.00\d+ of 0\.1$/);
    const bar = page.getByRole('progressbar', { name: /Spent of the project limit per day/ });
    expect(Number(await bar.getAttribute('value'))).toBeGreaterThan(0);
    expect(Number(await bar.getAttribute('value'))).toBeLessThan(0.5);
    expect(await unnamedControlsOn(page)).toEqual([]);
    await snap(page, 'budgets');
  });

  test('the usage page shows the calls made, by day, model and member, and exports CSV', async () => {
    await page.goto(`${projectUrl}/usage`);
    const byModel = page.getByRole('table', { name: 'Usage by model' });
    const mock = byModel.getByRole('row', { name: /mock-echo/ });
    await mock.waitFor();
    // The answered call and the refused one (refusals are recorded, at no cost).
    expect(await mock.locator('td').nth(1).textContent()).toBe('2');
    expect(
      await page
        .getByRole('table', { name: 'Usage by member' })
        .getByRole('row', { name: /Ada/ })
        .count(),
    ).toBe(1);
    expect(await page.getByText('2 calls').count()).toBe(1);
    await page.locator('.recharts-surface').first().waitFor();

    const calls = page.getByRole('table', { name: 'Recent calls' }).locator('tbody tr');
    await expect.poll(() => calls.count()).toBe(2);
    expect(await calls.nth(0).textContent()).toContain('budget.exceeded');
    expect(await calls.nth(0).getAttribute('data-status')).toBe('denied');
    expect(await calls.nth(1).getAttribute('data-status')).toBe('succeeded');
    expect(await unnamedControlsOn(page)).toEqual([]);
    await snap(page, 'usage');
    if (process.env.UPDATE_SCREENSHOT) {
      await page.screenshot({
        path: join(import.meta.dirname, '..', 'docs', 'usage.png'),
        fullPage: true,
      });
    }

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export calls as CSV' }).click(),
    ]);
    const csv = readFileSync((await download.path()) ?? '', 'utf8').split('\r\n');
    expect(csv[0]).toMatch(/^createdAt,source,model,status,errorCode,/);
    expect(csv[1]).toContain(',chat,mock-echo,denied,budget.exceeded,');
    expect(csv[2]).toContain(',chat,mock-echo,succeeded,,');

    // A range with no calls.
    await page.getByLabel('From', { exact: true }).fill('2020-01-01');
    await page.getByLabel('To', { exact: true }).fill('2020-01-31');
    await expect.poll(() => page.getByText('0 calls').count()).toBe(1);
    await page.getByLabel('To', { exact: true }).fill('2019-01-01');
    expect(await page.getByRole('alert').first().textContent()).toMatch(/Pick a range/);
  });

  test('the policy editor saves rules and shows the server’s validation messages', async () => {
    await page.goto(`${projectUrl}/policies`);
    const tokens = page.getByRole('spinbutton', { name: 'Max output tokens per call' });
    await tokens.fill('0');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/maxOutputTokens/);
    await tokens.fill('50');
    await page.getByRole('textbox', { name: 'Max cost per request (USDC)' }).fill('lots');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/maxCostPerRequest/);
    await page.getByRole('textbox', { name: 'Max cost per request (USDC)' }).fill('0.5');
    await page.getByRole('checkbox', { name: 'Any model' }).uncheck();
    await page.getByRole('checkbox', { name: 'mock-echo' }).check();
    await page.getByRole('spinbutton', { name: 'Requests per minute' }).fill('30');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await page.getByText('Saved.').waitFor();
    expect(await unnamedControlsOn(page)).toEqual([]);
    await snap(page, 'policy');

    await page.reload();
    await expect.poll(() => tokens.inputValue()).toBe('50');
    expect(
      await page.getByRole('textbox', { name: 'Max cost per request (USDC)' }).inputValue(),
    ).toMatch(/^0\.5/);
    expect(await page.getByRole('checkbox', { name: 'mock-echo' }).isChecked()).toBe(true);
    expect(await page.getByRole('checkbox', { name: 'Any model' }).isChecked()).toBe(false);
    expect(await page.getByRole('spinbutton', { name: 'Tokens per minute' }).inputValue()).toBe('');
  });

  test('a viewer sees budgets, usage and policy without the controls to change them', async () => {
    await page.goto(`${projectUrl}/settings`);
    await page.getByRole('textbox', { name: 'Member email' }).fill('vic@example.com');
    await page.getByRole('combobox', { name: 'New member role' }).selectOption('viewer');
    await page.getByRole('button', { name: 'Add member' }).click();
    await page.getByRole('combobox', { name: 'Role of vic@example.com' }).waitFor();

    const viewerCtx = await browser.newContext({ baseURL: server.origin });
    try {
      const viewer = await signInTab(viewerCtx, 'vic@example.com', PASSWORD);
      await viewer.goto(`${projectUrl}/budgets`);
      await viewer
        .getByRole('table', { name: 'Budget limits' })
        .locator('tbody tr')
        .first()
        .waitFor();
      expect(await viewer.getByRole('button', { name: /Save limit|Remove|Edit/ }).count()).toBe(0);
      await viewer.goto(`${projectUrl}/policies`);
      const tokens = viewer.getByRole('spinbutton', { name: 'Max output tokens per call' });
      await expect.poll(() => tokens.inputValue()).toBe('50');
      expect(await tokens.isDisabled()).toBe(true);
      expect(await viewer.getByRole('button', { name: 'Save policy' }).count()).toBe(0);
      await viewer.goto(`${projectUrl}/usage`);
      await viewer
        .getByRole('table', { name: 'Usage by model' })
        .getByRole('row', { name: /mock-echo/ })
        .waitFor();
      // usage.requests is for admins: no table of calls.
      expect(await viewer.getByRole('table', { name: 'Recent calls' }).count()).toBe(0);
    } finally {
      await viewerCtx.close();
    }
  });

  test('an admin removes the limit', async () => {
    await page.goto(`${projectUrl}/budgets`);
    await expect.poll(() => limitRows().count()).toBe(1);
    await page.getByRole('button', { name: /Remove the project limit per day/ }).click();
    await expect.poll(() => limitRows().count()).toBe(0);
  });
});
