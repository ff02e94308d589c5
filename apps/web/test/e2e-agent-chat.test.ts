import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
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
 * Chatting with an agent in the browser: the conversation's reply is a run of the agent, its
 * tool calls show under the reply, and a call that needs approval is approved from the chat.
 */

const PASSWORD = 'correct horse battery staple';
const EMAIL = 'grace@example.com';

let server: Server;
let browser: Browser;
let page: Page;
const snap = snapsIn('agent-chat');

async function call<T>(path: string, input: unknown, token?: string): Promise<T> {
  const res = await fetch(`${server.origin}/trpc/${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify(input),
  });
  const body = (await res.json()) as { result?: { data: T } };
  if (!body.result) throw new Error(`${path}: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body.result.data;
}

let projectId: string;
let agentId: string;
let token: string;

beforeAll(async () => {
  ensureBuilt();
  server = await startServer();
  await registerUser(server.origin, { email: EMAIL, name: 'Grace', password: PASSWORD });
  const { accessToken } = await call<{ accessToken: string }>('auth.login', {
    email: EMAIL,
    password: PASSWORD,
  });
  token = accessToken;
  ({ id: projectId } = await call<{ id: string }>(
    'projects.create',
    { name: 'Labs' },
    accessToken,
  ));
  ({ id: agentId } = await call<{ id: string }>(
    'agents.create',
    {
      projectId,
      name: 'Calc',
      instructions: 'Compute with the calculator.',
      model: 'mock-echo',
      tools: ['calculator', 'current_time'],
      requiresApproval: ['calculator'],
    },
    accessToken,
  ));
  browser = await launchBrowser();
  ({ page } = await signedInContext(
    browser,
    server.origin,
    { email: EMAIL, password: PASSWORD },
    { viewport: { width: 1280, height: 800 } },
  ));
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

const lastReply = () => page.getByRole('listitem', { name: 'Assistant message' }).last();
const steps = () => lastReply().getByRole('list', { name: 'Agent steps' });

describe('a conversation with an agent, in Chromium', () => {
  test('pick the agent, see its tool calls, approve one from the chat', async () => {
    await page.goto(`/projects/${projectId}/chat`);
    await page
      .getByRole('combobox', { name: 'Talk to' })
      .selectOption({ label: 'with agent Calc' });
    await page.getByRole('button', { name: 'New chat' }).click();
    await page.waitForURL(/\/chat\/[0-9a-f-]{36}$/);
    await expect.poll(() => page.getByText('Agent: Calc').count()).toBe(1);
    // The agent's model applies: no model picker.
    expect(await page.getByRole('combobox', { name: 'Model' }).count()).toBe(0);

    const composer = page.getByRole('textbox', { name: 'Message' });
    // A tool that needs no approval runs at once, and shows under the reply.
    await composer.fill('What time is it? [[tool:current_time]]');
    await composer.press('Enter');
    await expect
      .poll(() => lastReply().getAttribute('data-status'), { timeout: 60_000 })
      .toBe('complete');
    expect(await steps().textContent()).toMatch(/Called current_time/);
    expect(await steps().textContent()).toMatch(/current_time → \{"iso"/);

    // One that needs approval waits; the approval shows in the chat.
    await composer.fill('Multiply [[tool:calculator {"expression":"6*7"}]]');
    await composer.press('Enter');
    const approval = lastReply().getByRole('group', { name: 'Approval' });
    await approval.waitFor({ timeout: 60_000 });
    expect(await steps().textContent()).toMatch(/Waiting for approval: calculator/);
    expect(await lastReply().getAttribute('data-status')).toBe('streaming');
    expect(await unnamedControlsOn(page)).toEqual([]);
    await snap(page, 'approval-pending');

    await approval.getByRole('textbox', { name: 'Approval note' }).fill('go ahead');
    await approval.getByRole('button', { name: 'Approve' }).click();
    await expect
      .poll(() => lastReply().getAttribute('data-status'), { timeout: 60_000 })
      .toBe('complete');
    expect(await lastReply().locator('.markdown').textContent()).toContain('Result: {"result":42}');
    const text = await steps().textContent();
    expect(text).toMatch(/Approved: go ahead/);
    expect(text).toMatch(/calculator → \{"result":42\}/);
    expect(await lastReply().getByRole('group', { name: 'Approval' }).count()).toBe(0);
    await snap(page, 'approved');

    // A reload shows the finished conversation, steps included (saved with the progress).
    await page.reload();
    await expect
      .poll(() => lastReply().getAttribute('data-status'), { timeout: 30_000 })
      .toBe('complete');
    expect(await lastReply().locator('.markdown').textContent()).toContain('Result: {"result":42}');
  });

  test('the run console shows a waiting step; rejected, the model is told and the run ends', async () => {
    const run = await call<{ id: string }>(
      'runs.start',
      { agentId, input: 'Divide [[tool:calculator {"expression":"1/0"}]]' },
      token,
    );
    await page.goto(`/projects/${projectId}/runs/${run.id}`);
    const panel = page.getByRole('region', { name: 'Pending approvals' });
    await panel.waitFor({ timeout: 60_000 });
    expect(await panel.textContent()).toMatch(/calculator.*1\/0/s);
    await expect
      .poll(() => page.locator('.badge').first().getAttribute('data-status'))
      .toBe('awaiting_approval');
    expect(await unnamedControlsOn(page)).toEqual([]);
    await snap(page, 'run-console-approval');
    await panel.getByRole('textbox', { name: 'Approval note' }).fill('no dividing by zero');
    await panel.getByRole('button', { name: 'Reject' }).click();
    await expect
      .poll(() => page.locator('.badge').first().getAttribute('data-status'), { timeout: 60_000 })
      .toBe('succeeded');
    expect(await page.getByRole('region', { name: 'Pending approvals' }).count()).toBe(0);
    expect(await page.locator('.output').textContent()).toMatch(
      /Result \(error\): A person rejected this call of calculator: no dividing by zero/,
    );
  });
});
