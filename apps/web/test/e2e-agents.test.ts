import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
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
// The mock model streams its echo word by word (~5 ms a word): this runs for several seconds, and
// stays under a run step's default output cap (RUN_MAX_OUTPUT_TOKENS 4096, ~16k characters).
const LONG_INPUT = Array.from({ length: 1200 }, (_, i) => `word${i}`).join(' ');
const SCHEMA = JSON.stringify({
  type: 'object',
  properties: { answer: { type: 'number' } },
  required: ['answer'],
  additionalProperties: false,
});

let server: Server;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let projectUrl: string;
const snap = snapsIn('agents');

beforeAll(async () => {
  ensureBuilt();
  server = await startServer();
  browser = await launchBrowser();
  await registerUser(server.origin, { email: 'ada@example.com', name: 'Ada', password: PASSWORD });
  await registerUser(server.origin, { email: 'vic@example.com', name: 'Vic', password: PASSWORD });
  ({ context, page } = await signedInContext(browser, server.origin, {
    email: 'ada@example.com',
    password: PASSWORD,
  }));
  page.on('dialog', (d) => void d.accept());
  projectUrl = `/projects/${await createProject(page, 'Agents')}`;
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

const status = (p: Page = page) => p.locator('.run-console .badge').getAttribute('data-status');
const entries = (kind: string, p: Page = page) =>
  p.getByRole('list', { name: 'Run timeline' }).locator(`[data-kind="${kind}"]`);

async function waitForStatus(want: string, p: Page = page, timeout = 60_000) {
  await expect.poll(() => status(p), { timeout }).toBe(want);
}

async function createAgent(fill: (p: Page) => Promise<void>): Promise<string> {
  await page.goto(`${projectUrl}/agents`);
  await page.getByRole('link', { name: 'New agent' }).click();
  await page.waitForURL(/\/agents\/new$/);
  await fill(page);
  await page.getByRole('button', { name: 'Create agent' }).click();
  await page.waitForURL(/\/agents\/[0-9a-f-]{36}$/);
  return page.url().split('/').pop() ?? '';
}

async function startRun(agentName: string, input: string): Promise<string> {
  await page.goto(`${projectUrl}/runs`);
  await page.getByRole('combobox', { name: 'Agent to run' }).selectOption({ label: agentName });
  await page.getByRole('textbox', { name: 'Run input' }).fill(input);
  await page.getByRole('button', { name: 'Start run' }).click();
  await page.waitForURL(/\/runs\/[0-9a-f-]{36}$/);
  return page.url();
}

describe('agents and runs in Chromium', () => {
  test('two agents with a handoff and an output schema; the schema is checked before saving', async () => {
    await createAgent(async (p) => {
      await p.getByRole('textbox', { name: 'Name', exact: true }).fill('Writer');
      await p.getByLabel('Instructions').fill('Write up what you are given.');
    });

    await page.goto(`${projectUrl}/agents/new`);
    await page.getByRole('textbox', { name: 'Name', exact: true }).fill('Solver');
    await page.getByLabel('Instructions').fill('Solve with the calculator, then hand off.');
    expect(await page.getByRole('combobox', { name: 'Model' }).inputValue()).toBe('mock-echo');
    // Tools come with their descriptions; handoff targets are the project's other agents.
    const calculator = page.getByRole('checkbox', { name: /calculator/ });
    expect(await calculator.locator('xpath=..').textContent()).toMatch(/calculator\s+\S+/);
    await calculator.check();
    await page.getByRole('checkbox', { name: 'Writer' }).check();
    await page.getByLabel('Max steps').fill('6');

    // Not JSON: said at once, and Save waits.
    const schemaBox = page.getByLabel(/Output JSON Schema/);
    await schemaBox.fill('{"type": "object",');
    await expect.poll(() => page.locator('#schema-error').textContent()).toMatch(/Not valid JSON/);
    expect(await page.getByRole('button', { name: 'Create agent' }).isDisabled()).toBe(true);
    await schemaBox.fill('[1, 2]');
    await expect.poll(() => page.locator('#schema-error').textContent()).toMatch(/JSON object/);
    // JSON, but no JSON Schema: the server's agents.invalid message, under the box.
    await schemaBox.fill('{"type": "objekt"}');
    expect(await page.locator('#schema-error').textContent()).toBe('');
    await page.getByRole('button', { name: 'Create agent' }).click();
    await expect
      .poll(() => page.locator('#schema-error').textContent())
      .toMatch(/Invalid outputSchema/);
    await snap(page, 'agent-schema-error');
    expect(page.url()).toMatch(/\/agents\/new$/);

    await schemaBox.fill(JSON.stringify(JSON.parse(SCHEMA), null, 2));
    await page.getByRole('button', { name: 'Create agent' }).click();
    await page.waitForURL(/\/agents\/[0-9a-f-]{36}$/);
    await page.getByRole('button', { name: 'Save agent' }).waitFor();
    expect(await unnamedControlsOn(page)).toEqual([]);
    await snap(page, 'agent-editor');

    // Edits save in place.
    await page.getByLabel('Description').fill('Computes, then hands off to Writer.');
    await page.getByRole('button', { name: 'Save agent' }).click();
    await page.getByText('Saved.').waitFor();

    await page.goto(`${projectUrl}/agents`);
    const solverRow = page.getByRole('row', { name: /Solver/ });
    await solverRow.waitFor();
    expect(await solverRow.textContent()).toContain('calculator');
    expect(await solverRow.textContent()).toContain('Writer');
    expect(await solverRow.textContent()).toContain('JSON schema');
    await snap(page, 'agents-list');
  });

  test('a run with a tool call and a handoff, watched live to run.completed', async () => {
    await startRun(
      'Solver',
      'Please [[tool:calculator {"expression": "6 * 7"}]] [[tool:handoff_to_writer {"reason": "done"}]]',
    );
    await waitForStatus('succeeded');
    await entries('end').filter({ hasText: 'run.completed' }).waitFor();
    // Model step, the calculator's input and result, the handoff, then Writer's step.
    const tool = entries('tool').first();
    expect(await tool.textContent()).toContain('calculator');
    expect(await tool.textContent()).toContain('6 * 7');
    expect(await tool.textContent()).toContain('42');
    expect(await entries('handoff').first().textContent()).toContain('Solver → Writer');
    expect(await entries('model').count()).toBe(2);
    expect(await entries('model').last().textContent()).toContain('Writer');
    // Tokens and cost per model step; durations once the steps are stored.
    expect(await entries('model').first().textContent()).toMatch(
      /\d+ in \/ \d+ out · 0(\.0+)? USDC/,
    );
    await expect.poll(() => entries('model').first().textContent()).toMatch(/\d+(\.\d)? m?s/);
    expect(await page.getByText('Result: {"result":42}').count()).toBeGreaterThan(0);
    expect(await page.getByRole('button', { name: 'Cancel run' }).count()).toBe(0);
    expect(await unnamedControlsOn(page)).toEqual([]);
    await snap(page, 'run-completed');
  });

  test('an agent with an output schema answers pretty JSON', async () => {
    await startRun('Solver', 'Here it is: ```json\n{"answer": 42}\n```');
    await waitForStatus('succeeded');
    const output = page.locator('pre.output');
    expect(await output.textContent()).toBe('{\n  "answer": 42\n}');
  });

  test('a reload mid-run resumes the timeline: the streamed text ends complete, once', async () => {
    const url = await startRun('Writer', LONG_INPUT);
    await expect
      .poll(async () => ((await entries('model').first().textContent()) ?? '').length, {
        timeout: 30_000,
      })
      .toBeGreaterThan(200);
    expect(await status()).toBe('running');
    await page.reload();
    await page.getByRole('list', { name: 'Run timeline' }).waitFor();
    // Straight after the reload, the saved timeline is back before any new event.
    expect(((await entries('model').first().textContent()) ?? '').length).toBeGreaterThan(100);
    await waitForStatus('succeeded', page, 90_000);
    const streamed = await entries('model').first().locator('.streamed').textContent();
    expect(streamed).toBe(`Echo: ${LONG_INPUT}`);
    expect(await page.locator('pre.output').textContent()).toBe(`Echo: ${LONG_INPUT}`);

    // A new tab with nothing saved replays the run's events from the start.
    const tab = await context.newPage();
    await tab.goto(url);
    await waitForStatus('succeeded', tab);
    expect(await entries('model', tab).first().locator('.streamed').textContent()).toBe(
      `Echo: ${LONG_INPUT}`,
    );
    await tab.close();
  });

  test('cancel a run mid-stream', async () => {
    await startRun('Writer', LONG_INPUT);
    await expect
      .poll(async () => ((await entries('model').first().textContent()) ?? '').length, {
        timeout: 30_000,
      })
      .toBeGreaterThan(50);
    await page.getByRole('button', { name: 'Cancel run' }).click();
    await waitForStatus('cancelled');
    await entries('end').filter({ hasText: 'run.cancelled' }).waitFor();
    const streamed = (await entries('model').first().locator('.streamed').textContent()) ?? '';
    expect(streamed.length).toBeLessThan(`Echo: ${LONG_INPUT}`.length);
    expect(await page.getByRole('button', { name: 'Cancel run' }).count()).toBe(0);
    await snap(page, 'run-cancelled');
  });

  test('the runs list filters by status and agent; a finished run opens read-only', async () => {
    await page.goto(`${projectUrl}/runs`);
    const rows = page.getByRole('table', { name: 'Runs' }).locator('tbody tr');
    await expect.poll(() => rows.count()).toBe(4);
    await page.getByRole('combobox', { name: 'Status' }).selectOption('cancelled');
    await expect.poll(() => rows.count()).toBe(1);
    await page.getByRole('combobox', { name: 'Status' }).selectOption('succeeded');
    await expect.poll(() => rows.count()).toBe(3);
    await page
      .getByRole('combobox', { name: 'Agent', exact: true })
      .selectOption({ label: 'Solver' });
    await expect.poll(() => rows.count()).toBe(2);
    expect(page.url()).toMatch(/status=succeeded/);
    expect(await unnamedControlsOn(page)).toEqual([]);
    await snap(page, 'runs-list');

    // The oldest Solver run, from runs.get: stored steps, the tool named, no live controls.
    await rows.last().getByRole('link').click();
    await page.waitForURL(/\/runs\/[0-9a-f-]{36}$/);
    await waitForStatus('succeeded');
    expect(await entries('tool').first().textContent()).toContain('calculator');
    expect(await entries('tool').first().textContent()).toContain('42');
    expect(await entries('handoff').count()).toBe(1);
    expect(await entries('model').first().textContent()).toMatch(/\d+ in \/ \d+ out/);
    expect(await page.getByRole('button', { name: 'Cancel run' }).count()).toBe(0);
    if (process.env.UPDATE_SCREENSHOT) {
      await page.screenshot({
        path: join(import.meta.dirname, '..', 'docs', 'run-console.png'),
        fullPage: true,
      });
    }
  });

  test('a viewer reads agents and runs but gets no controls to change them', async () => {
    await page.goto(`${projectUrl}/settings`);
    await page.getByRole('textbox', { name: 'Member email' }).fill('vic@example.com');
    await page.getByRole('combobox', { name: 'New member role' }).selectOption('viewer');
    await page.getByRole('button', { name: 'Add member' }).click();
    await page.getByRole('combobox', { name: 'Role of vic@example.com' }).waitFor();

    const viewerCtx = await browser.newContext({ baseURL: server.origin });
    try {
      const viewer = await signInTab(viewerCtx, 'vic@example.com', PASSWORD);
      await viewer.goto(`${projectUrl}/agents`);
      await viewer.getByRole('link', { name: 'Solver' }).click();
      await viewer.waitForURL(/\/agents\/[0-9a-f-]{36}$/);
      await viewer.getByRole('textbox', { name: 'Name', exact: true }).waitFor();
      expect(await viewer.getByRole('textbox', { name: 'Name', exact: true }).isDisabled()).toBe(
        true,
      );
      expect(await viewer.getByRole('button', { name: /Save agent|Delete agent/ }).count()).toBe(0);
      expect(await viewer.getByRole('button', { name: 'Start run' }).count()).toBe(0);
      expect(await viewer.getByRole('link', { name: 'New agent' }).count()).toBe(0);
      await viewer.goto(`${projectUrl}/runs`);
      await viewer.getByRole('table', { name: 'Runs' }).locator('tbody tr').first().waitFor();
      expect(await viewer.getByRole('button', { name: 'Start run' }).count()).toBe(0);
      await snap(viewer, 'runs-as-viewer');
    } finally {
      await viewerCtx.close();
    }
  });
});
