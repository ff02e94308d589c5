import { startTestMcpServer, type TestMcpServer } from '@smartspace/api/testing/mcp';
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

/**
 * MCP tool servers as an admin manages them in the browser, against a real MCP server (the
 * protocol's SDK) on loopback: add one with a header, see its tools, give one to an agent,
 * chat with the agent through it, remove the server.
 */

const PASSWORD = 'correct horse battery staple';
const EMAIL = 'ada.mcp@example.com';

let server: Server;
let mcp: TestMcpServer;
let browser: Browser;
let page: Page;
const snap = snapsIn('mcp');

beforeAll(async () => {
  ensureBuilt();
  mcp = await startTestMcpServer();
  // Loopback MCP servers only with this setting (tests and development).
  server = await startServer({ MCP_ALLOW_HTTP_LOOPBACK: 'true' });
  await registerUser(server.origin, { email: EMAIL, name: 'Ada', password: PASSWORD });
  browser = await launchBrowser();
  ({ page } = await signedInContext(browser, server.origin, {
    email: EMAIL,
    password: PASSWORD,
  }));
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  await mcp?.close();
});

describe('MCP tool servers, in Chromium', () => {
  test('add a server, give its tool to an agent, chat through it, remove it', async () => {
    const projectId = await createProject(page, 'Tools');

    await page.goto(`/projects/${projectId}/agents`);
    const section = page.getByRole('region', { name: 'Tool servers' });
    // A header line without a colon is caught before anything is sent.
    await section.getByRole('textbox', { name: 'Server name' }).fill('helpers');
    await section.getByRole('textbox', { name: 'Server URL' }).fill(mcp.url);
    await section.getByRole('textbox', { name: 'Server headers' }).fill('no colon here');
    await section.getByRole('button', { name: 'Add server' }).click();
    await expect
      .poll(() => section.getByRole('alert').first().textContent())
      .toMatch(/Name: value/);
    await section.getByRole('textbox', { name: 'Server headers' }).fill('X-Team-Token: s3cret');
    await section.getByRole('button', { name: 'Add server' }).click();
    const card = section.getByRole('listitem', { name: 'Server helpers' });
    await card.waitFor({ timeout: 30_000 });
    const tools = card.getByRole('list', { name: 'Tools of helpers' });
    await expect.poll(() => tools.textContent()).toMatch(/mcp__helpers__echo/);
    // The header reached the MCP server; the page shows its name only.
    expect(mcp.received.some((h) => h['x-team-token'] === 's3cret')).toBe(true);
    expect(await card.textContent()).toMatch(/headers: x-team-token/i);
    expect(await page.content()).not.toContain('s3cret');
    expect(await unnamedControlsOn(page)).toEqual([]);
    await snap(page, 'server-added');

    // The agent editor offers the server's tools.
    await page.goto(`/projects/${projectId}/agents/new`);
    await page.getByLabel('Name', { exact: true }).fill('Echoer');
    await page.getByLabel('Instructions').fill('Use the echo tool.');
    await page.getByRole('combobox', { name: 'Model' }).selectOption('mock-echo');
    await page.getByRole('checkbox', { name: /mcp__helpers__echo/ }).check();
    await page.getByRole('button', { name: /^(Create|Save)/ }).click();
    await page.waitForURL(/\/agents\/[0-9a-f-]{36}$/);

    // Chat with the agent: the MCP tool runs and its answer comes back.
    await page.goto(`/projects/${projectId}/chat`);
    await page
      .getByRole('combobox', { name: 'Talk to' })
      .selectOption({ label: 'with agent Echoer' });
    await page.getByRole('button', { name: 'New chat' }).click();
    await page.waitForURL(/\/chat\/[0-9a-f-]{36}$/);
    const composer = page.getByRole('textbox', { name: 'Message' });
    await composer.fill('Say it [[tool:mcp__helpers__echo {"text":"hello mcp"}]]');
    await composer.press('Enter');
    const reply = page.getByRole('listitem', { name: 'Assistant message' }).last();
    await expect
      .poll(() => reply.getAttribute('data-status'), { timeout: 60_000 })
      .toBe('complete');
    expect(await reply.locator('.markdown').textContent()).toContain('echo: hello mcp');
    expect(await reply.getByRole('list', { name: 'Agent steps' }).textContent()).toMatch(
      /Called mcp__helpers__echo/,
    );
    await snap(page, 'chat-through-mcp');

    // Removed: gone from the list and from the agent's tools.
    await page.goto(`/projects/${projectId}/agents`);
    page.once('dialog', (d) => void d.accept());
    await page
      .getByRole('listitem', { name: 'Server helpers' })
      .getByRole('button', { name: 'Remove' })
      .click();
    await expect.poll(() => page.getByRole('listitem', { name: 'Server helpers' }).count()).toBe(0);
    await expect
      .poll(() => page.getByRole('table', { name: 'Agents' }).textContent())
      .not.toMatch(/mcp__helpers__echo/);
  });
});
