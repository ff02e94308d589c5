import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  ensureBuilt,
  launchBrowser,
  RESULTS,
  resetResults,
  type Server,
  snap,
  startServer,
} from './harness';

const PASSWORD = 'correct horse battery staple';
// The mock model echoes the question word by word: a long question streams for seconds.
const LONG_QUESTION = Array.from({ length: 1500 }, (_, i) => `word${i}`).join(' ');
const echo = (question: string) => `Echo: ${question}`;

let server: Server;
let browser: Browser;
let context: BrowserContext;
let page: Page;

beforeAll(async () => {
  resetResults();
  ensureBuilt();
  server = await startServer();
  browser = await launchBrowser();
  context = await browser.newContext({
    baseURL: server.origin,
    viewport: { width: 1280, height: 800 },
  });
  page = await context.newPage();
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

const messages = () => page.getByRole('list', { name: 'Messages' }).getByRole('listitem');
const replies = () => page.getByRole('listitem', { name: 'Assistant message' });
const lastReply = () => replies().last();

/** The text of a reply's Markdown body, as rendered. */
async function replyText(reply = lastReply()): Promise<string> {
  return ((await reply.locator('.markdown').textContent()) ?? '').trim();
}

async function waitForStatus(reply: ReturnType<typeof lastReply>, status: string) {
  await expect.poll(() => reply.getAttribute('data-status'), { timeout: 60_000 }).toBe(status);
}

/**
 * Every control on the page has an accessible name, as assistive technology computes it
 * (Chromium's accessibility tree, not our markup).
 */
async function unnamedControls(cdp: CDPSession): Promise<string[]> {
  const { nodes } = (await cdp.send('Accessibility.getFullAXTree')) as {
    nodes: { ignored: boolean; role?: { value: string }; name?: { value: string } }[];
  };
  const controls = new Set(['button', 'textbox', 'combobox', 'checkbox', 'link', 'searchbox']);
  return nodes
    .filter((n) => !n.ignored && controls.has(n.role?.value ?? '') && !n.name?.value?.trim())
    .map((n) => n.role?.value ?? '?');
}

describe('the web app, end to end in Chromium', () => {
  test('serves the app, keeps the API routes, and 404s what is neither', async () => {
    const index = await fetch(`${server.origin}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const html = await index.text();
    expect(html).toContain('<div id="root">');
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(asset).toBeDefined();
    const js = await fetch(`${server.origin}${asset}`);
    expect(js.status).toBe(200);
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    // App routes fall back to index.html; everything else keeps its owner.
    const deep = await fetch(`${server.origin}/projects/abc/chat`);
    expect(deep.status).toBe(200);
    expect(await deep.text()).toBe(html);
    expect((await fetch(`${server.origin}/health`)).status).toBe(200);
    expect((await fetch(`${server.origin}/docs/openapi.json`)).status).toBe(200);
    const unknownTrpc = await fetch(`${server.origin}/trpc/nope.nothing`);
    expect(unknownTrpc.status).toBe(404);
    expect((await fetch(`${server.origin}/nothing-here`)).status).toBe(404);
    expect((await fetch(`${server.origin}/assets/missing.js`)).status).toBe(404);
    expect((await fetch(`${server.origin}/.build-stamp`)).status).toBe(404);
  });

  test('register, project, streamed chat, stop, regenerate, reload mid-stream, edit, attach, sign out everywhere', async () => {
    const cdp = await context.newCDPSession(page);

    // Register.
    await page.goto('/register');
    expect(await unnamedControls(cdp)).toEqual([]);
    await page.getByLabel('Name').fill('Ada');
    await page.getByLabel('Email').fill('ada@example.com');
    await page.getByLabel(/^Password/).fill(PASSWORD);
    await snap(page, 'register');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL('**/projects');

    // Create a project: lands in its chat.
    await page.getByRole('textbox', { name: 'Project name' }).fill('Apollo');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.waitForURL(/\/projects\/[^/]+\/chat$/);
    await expect
      .poll(() => page.getByRole('combobox', { name: 'Project' }).inputValue())
      .not.toBe('');
    await snap(page, 'project-created');

    // New chat.
    await page.getByRole('button', { name: 'New chat' }).click();
    await page.waitForURL(/\/chat\/[0-9a-f-]{36}$/);
    const composer = page.getByRole('textbox', { name: 'Message' });

    // Keyboard only: Shift+Enter adds a line, Enter sends; the reply streams as Markdown.
    await composer.focus();
    await page.keyboard.type('Say **hello**');
    await page.keyboard.press('Shift+Enter');
    await page.keyboard.type('and `code`');
    expect(await composer.inputValue()).toBe('Say **hello**\nand `code`');
    await page.keyboard.press('Enter');
    await waitForStatus(lastReply(), 'complete');
    expect(await composer.inputValue()).toBe('');
    await expect.poll(() => replyText()).toBe('Echo: Say hello\nand code');
    expect(await lastReply().locator('strong').textContent()).toBe('hello');
    expect(await lastReply().locator('code').textContent()).toBe('code');
    await expect
      .poll(() => lastReply().locator('.meta').textContent())
      .toMatch(/\d+ in \/ \d+ out tokens · \$0\.0000/);
    expect(await unnamedControls(cdp)).toEqual([]);
    await snap(page, 'first-reply');

    // A long reply, stopped mid-stream with Esc.
    await composer.fill(LONG_QUESTION);
    await composer.press('Enter');
    await expect
      .poll(async () => (await replyText()).length, { timeout: 30_000 })
      .toBeGreaterThan(60);
    await expect(page.getByRole('button', { name: 'Stop' })).toBeTruthy();
    await snap(page, 'streaming');
    await composer.press('Escape');
    await waitForStatus(lastReply(), 'cancelled');
    const stopped = await replyText();
    expect(echo(LONG_QUESTION).startsWith(stopped)).toBe(true);
    expect(stopped.length).toBeLessThan(echo(LONG_QUESTION).length);
    expect(await lastReply().getByRole('status').textContent()).toBe('Stopped.');
    await snap(page, 'stopped');

    // Regenerate the stopped reply, and reload while it streams: it completes exactly once.
    await lastReply().getByRole('button', { name: 'Regenerate' }).click();
    await expect.poll(() => lastReply().getAttribute('data-status')).toBe('streaming');
    await expect
      .poll(async () => (await replyText()).length, { timeout: 30_000 })
      .toBeGreaterThan(60);
    await page.reload();
    await expect.poll(() => lastReply().getAttribute('data-status')).toBe('streaming');
    await snap(page, 'reloaded-mid-stream');
    await waitForStatus(lastReply(), 'complete');
    expect(await replyText()).toBe(echo(LONG_QUESTION));
    expect(await replies().count()).toBe(2);
    await snap(page, 'completed-after-reload');

    // A reload with no saved progress (a new tab) mid-stream replays the reply from its start.
    await lastReply().getByRole('button', { name: 'Regenerate' }).click();
    await expect
      .poll(async () => (await replyText()).length, { timeout: 30_000 })
      .toBeGreaterThan(60);
    const url = page.url();
    const fresh = await context.newPage();
    await fresh.goto(url);
    const freshReply = fresh.getByRole('listitem', { name: 'Assistant message' }).last();
    await expect
      .poll(() => freshReply.getAttribute('data-status'), { timeout: 60_000 })
      .toBe('complete');
    expect(((await freshReply.locator('.markdown').textContent()) ?? '').trim()).toBe(
      echo(LONG_QUESTION),
    );
    await fresh.close();
    await waitForStatus(lastReply(), 'complete');

    // Edit the first question and resend: everything after it is replaced.
    const first = page.getByRole('listitem', { name: 'You message' }).first();
    await first.getByRole('button', { name: 'Edit message' }).click();
    await page.getByRole('textbox', { name: 'Edit message' }).fill('Edited question');
    await page.getByRole('button', { name: 'Save and resend' }).click();
    await expect.poll(() => messages().count()).toBe(2);
    await waitForStatus(lastReply(), 'complete');
    expect(await replyText()).toBe(echo('Edited question'));
    await snap(page, 'edited');

    // Attach a file: it is uploaded, sent with the question, and cited by the reply.
    const notes = join(RESULTS, 'launch-notes.txt');
    writeFileSync(notes, 'The launch code of project Apollo is PURPLE-42.\n');
    await page.getByLabel('Attach files').setInputFiles(notes);
    await expect(
      page.getByRole('button', { name: 'Remove attachment launch-notes.txt' }),
    ).toBeTruthy();
    await page.getByRole('button', { name: 'Remove attachment launch-notes.txt' }).waitFor();
    const before = await replies().count();
    // With a code block, so the reply shows highlighting (and the README's screenshot too).
    await composer.fill(
      "What is the launch code?\n\n```ts\nconst code = await launch('Apollo');\n```",
    );
    await composer.press('Enter');
    await expect.poll(() => replies().count()).toBe(before + 1);
    await waitForStatus(lastReply(), 'complete');
    expect(await lastReply().locator('pre code .hljs-keyword').first().textContent()).toBe('const');
    // The reply cites the attached file; its chip opens the file (fetched with the token).
    const chip = lastReply().getByRole('button', { name: 'Open cited file launch-notes.txt' });
    await chip.waitFor();
    const [opened] = await Promise.all([context.waitForEvent('page'), chip.click()]);
    await opened.waitForLoadState();
    expect(opened.url()).toMatch(/^blob:/);
    expect(await opened.locator('body').textContent()).toContain('PURPLE-42');
    await opened.close();
    await page
      .getByRole('listitem', { name: 'You message' })
      .last()
      .getByRole('button', { name: /launch-notes\.txt/ })
      .waitFor();
    await snap(page, 'attachment');

    // The chat page as the README shows it, refreshed on request only (it is committed).
    if (process.env.UPDATE_SCREENSHOT) {
      await page.screenshot({ path: join(import.meta.dirname, '..', 'docs', 'screenshot.png') });
    }

    // Sign out everywhere from another tab: this tab lands on sign-in, with a message.
    const other = await context.newPage();
    await other.goto('/account');
    await other.getByRole('button', { name: 'Sign out everywhere' }).click();
    await other.waitForURL('**/sign-in');
    await page.waitForURL('**/sign-in');
    expect(await page.getByRole('status').textContent()).toContain('signed out');
    await snap(page, 'signed-out');
    await other.close();

    // Wrong password: a clear message; the right one brings the session back.
    await page.getByLabel('Email').fill('ada@example.com');
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/\S/);
    await snap(page, 'wrong-password');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    // Back where the session ended; the session survives a reload.
    await page.waitForURL(/\/chat\/[0-9a-f-]{36}$/);
    await page.reload();
    await expect
      .poll(() => replyText(), { timeout: 30_000 })
      .toMatch(/^Echo: What is the launch code\?/);
    await snap(page, 'signed-in-again');
  });
});

describe('projects, members, files and roles in Chromium', () => {
  /** Registers through the API (the UI's register page is covered above). */
  async function register(email: string, name: string): Promise<void> {
    const res = await fetch(`${server.origin}/trpc/auth.register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: PASSWORD, name }),
    });
    expect(res.status).toBe(200);
  }

  async function signIn(ctx: BrowserContext, email: string, password = PASSWORD): Promise<Page> {
    const p = await ctx.newPage();
    await p.goto('/sign-in');
    await p.getByLabel('Email').fill(email);
    await p.getByLabel('Password').fill(password);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.waitForURL('**/projects');
    return p;
  }

  test('forgot password answers the same for any email; a bad reset link is refused', async () => {
    const ctx = await browser.newContext({ baseURL: server.origin });
    try {
      const p = await ctx.newPage();
      await p.goto('/sign-in');
      await p.getByRole('link', { name: 'Forgot password?' }).click();
      await p.getByLabel('Email').fill('someone@example.com');
      await p.getByRole('button', { name: 'Send reset link' }).click();
      expect(await p.getByRole('status').textContent()).toContain('a reset link is on its way');
      await p.goto('/reset-password');
      expect(await p.getByRole('alert').textContent()).toContain('no reset token');
      await p.goto('/reset-password?token=not-a-real-token');
      await p.getByLabel('New password').fill('a brand new password');
      await p.getByRole('button', { name: 'Set password' }).click();
      await expect.poll(() => p.getByRole('alert').count()).toBe(1);
      expect(await p.getByRole('alert').textContent()).toMatch(/invalid, already used or expired/);
      await snap(p, 'bad-reset-link');
    } finally {
      await ctx.close();
    }
  });

  test('an owner manages the project, its members and files; a viewer only reads', async () => {
    await register('owner@example.com', 'Olga');
    await register('viewer@example.com', 'Vic');
    const ownerCtx = await browser.newContext({ baseURL: server.origin });
    const viewerCtx = await browser.newContext({ baseURL: server.origin });
    try {
      const owner = await signIn(ownerCtx, 'owner@example.com');
      owner.on('dialog', (d) => void d.accept());

      // Help: a private chat about SmartSpace itself, streamed like project chats.
      await owner.getByRole('link', { name: 'Help' }).click();
      await owner.getByRole('button', { name: 'New help chat' }).click();
      await owner.waitForURL(/\/help\/[0-9a-f-]{36}$/);
      await owner.getByRole('textbox', { name: 'Message' }).fill('How do I start the server?');
      await owner.getByRole('textbox', { name: 'Message' }).press('Enter');
      const answer = owner.getByRole('listitem', { name: 'Assistant message' }).last();
      await expect
        .poll(() => answer.getAttribute('data-status'), { timeout: 30_000 })
        .toBe('complete');
      expect(await answer.locator('.markdown').textContent()).toContain(
        'How do I start the server?',
      );
      expect(await unnamedControls(await ownerCtx.newCDPSession(owner))).toEqual([]);
      await snap(owner, 'help');
      const helpUrl = owner.url();
      await owner.goto('/projects');

      await owner.getByRole('textbox', { name: 'Project name' }).fill('Gemini');
      await owner.getByRole('button', { name: 'Create project' }).click();
      await owner.waitForURL(/\/chat$/);
      const projectUrl = owner.url().replace(/\/chat$/, '');

      // A failing model call shows its reason and offers a retry.
      await owner.getByRole('button', { name: 'New chat' }).click();
      await owner.waitForURL(/\/chat\/[0-9a-f-]{36}$/);
      await owner.getByRole('textbox', { name: 'Message' }).fill('please [[fail]] now');
      await owner.getByRole('textbox', { name: 'Message' }).press('Enter');
      const failed = owner.getByRole('listitem', { name: 'Assistant message' }).last();
      await expect
        .poll(() => failed.getAttribute('data-status'), { timeout: 30_000 })
        .toBe('failed');
      expect(await failed.getByRole('alert').textContent()).toContain(
        'connection to the model was cut',
      );
      await failed.getByRole('button', { name: 'Retry' }).waitFor();
      await snap(owner, 'reply-failed');

      // The first question names the chat; rename it, then delete it.
      const sidebar = owner.getByRole('complementary', { name: 'Conversations' });
      await sidebar.getByRole('link', { name: 'please [[fail]] now' }).waitFor();
      await owner.getByRole('textbox', { name: 'Conversation title' }).fill('Failing chat');
      await owner.getByRole('button', { name: 'Rename' }).click();
      await sidebar.getByRole('link', { name: 'Failing chat' }).waitFor();
      // Grounding and the system prompt are saved with the conversation.
      await owner.getByRole('button', { name: 'Settings', exact: true }).click();
      await owner.getByRole('checkbox', { name: "Ground replies in the project's files" }).check();
      await owner.getByRole('textbox', { name: 'System prompt' }).fill('Answer in haiku.');
      // Reload only once the server has stored it (the button alone says nothing about that).
      const saved = owner.waitForResponse(
        (r) =>
          r.url().includes('chat.conversations.update') &&
          (r.request().postData() ?? '').includes('Answer in haiku.'),
      );
      await owner.getByRole('button', { name: 'Save system prompt' }).click();
      expect((await saved).ok()).toBe(true);
      await owner.reload();
      await owner.getByRole('button', { name: 'Settings', exact: true }).click();
      // The form fills in once the conversation has loaded.
      await expect
        .poll(() => owner.getByRole('textbox', { name: 'System prompt' }).inputValue())
        .toBe('Answer in haiku.');
      expect(
        await owner
          .getByRole('checkbox', { name: "Ground replies in the project's files" })
          .isChecked(),
      ).toBe(true);
      expect(await owner.getByRole('combobox', { name: 'Model' }).inputValue()).toBe('mock-echo');
      await owner.getByRole('button', { name: 'Delete conversation' }).click();
      await owner.waitForURL(/\/chat$/);
      await expect.poll(() => sidebar.getByRole('link').count()).toBe(0);

      // Members: add the viewer, promote and demote.
      await owner.goto(`${projectUrl}/settings`);
      await owner.getByRole('textbox', { name: 'Member email' }).fill('viewer@example.com');
      await owner.getByRole('combobox', { name: 'New member role' }).selectOption('viewer');
      await owner.getByRole('button', { name: 'Add member' }).click();
      const role = owner.getByRole('combobox', { name: 'Role of viewer@example.com' });
      await role.waitFor();
      expect(await role.inputValue()).toBe('viewer');
      // An unknown email is refused with the server's message.
      await owner.getByRole('textbox', { name: 'Member email' }).fill('nobody@example.com');
      await owner.getByRole('button', { name: 'Add member' }).click();
      await expect.poll(() => owner.getByRole('alert').count()).toBeGreaterThan(0);
      const ownerCdp = await ownerCtx.newCDPSession(owner);
      expect(await unnamedControls(ownerCdp)).toEqual([]);
      await snap(owner, 'members');

      // Files: upload with progress, list, download.
      await owner.goto(`${projectUrl}/files`);
      const report = join(RESULTS, 'report.md');
      writeFileSync(report, '# Report\n\nAll systems nominal.\n');
      await owner.getByLabel('Upload files').setInputFiles(report);
      const row = owner.getByRole('row', { name: /report\.md/ });
      await row.waitFor();
      const [download] = await Promise.all([
        owner.waitForEvent('download'),
        row.getByRole('button', { name: 'Download report.md' }).click(),
      ]);
      expect(download.suggestedFilename()).toBe('report.md');
      expect(await unnamedControls(ownerCdp)).toEqual([]);
      await snap(owner, 'files');

      // The viewer sees the project but none of the controls that need a higher role.
      const viewer = await signIn(viewerCtx, 'viewer@example.com');
      await viewer.goto(`${projectUrl}/chat`);
      await viewer.getByRole('link', { name: 'Files' }).waitFor();
      expect(await viewer.getByRole('button', { name: 'New chat' }).count()).toBe(0);
      await viewer.goto(`${projectUrl}/files`);
      await viewer.getByRole('row', { name: /report\.md/ }).waitFor();
      expect(await viewer.getByLabel('Upload files').count()).toBe(0);
      expect(await viewer.getByRole('button', { name: 'Delete report.md' }).count()).toBe(0);
      await viewer.goto(`${projectUrl}/settings`);
      await viewer.getByRole('heading', { name: 'Members' }).waitFor();
      expect(await viewer.getByRole('button', { name: 'Delete project' }).count()).toBe(0);
      expect(await viewer.getByRole('button', { name: 'Add member' }).count()).toBe(0);
      await snap(viewer, 'viewer-settings');

      // The owner deletes the file, removes the viewer, renames and deletes the project.
      await row.getByRole('button', { name: 'Delete report.md' }).click();
      await expect.poll(() => owner.getByRole('row', { name: /report\.md/ }).count()).toBe(0);
      await owner.goto(`${projectUrl}/settings`);
      await owner.getByRole('button', { name: 'Remove viewer@example.com' }).click();
      await expect
        .poll(() => owner.getByRole('cell', { name: 'viewer@example.com' }).count())
        .toBe(0);
      await owner.getByRole('textbox', { name: 'Project name' }).fill('Gemini II');
      await owner.getByRole('button', { name: 'Rename project' }).click();
      await owner.getByRole('heading', { name: 'Gemini II' }).waitFor();
      await owner.getByRole('button', { name: 'Delete project' }).click();
      await owner.waitForURL('**/projects');
      expect(await owner.getByRole('link', { name: 'Gemini II' }).count()).toBe(0);

      // Change password: the current one is checked.
      await owner.goto('/account');
      await owner.getByLabel('Current password').fill('not my password');
      await owner.getByLabel('New password').fill('an even longer password');
      await owner.getByRole('button', { name: 'Change password' }).click();
      await expect.poll(() => owner.getByRole('alert').count()).toBe(1);
      await owner.getByLabel('Current password').fill(PASSWORD);
      await owner.getByLabel('New password').fill('an even longer password');
      await owner.getByRole('button', { name: 'Change password' }).click();
      await owner.getByText('Password changed.').waitFor();

      // Signed out everywhere from another browser (no shared storage): the server ends this
      // browser's session too, and its open page lands on sign-in.
      await owner.goto(helpUrl);
      await owner.getByRole('listitem', { name: 'Assistant message' }).last().waitFor();
      const elsewhereCtx = await browser.newContext({ baseURL: server.origin });
      const elsewhere = await signIn(elsewhereCtx, 'owner@example.com', 'an even longer password');
      await elsewhere.goto('/account');
      await elsewhere.getByRole('button', { name: 'Sign out everywhere' }).click();
      await elsewhere.waitForURL('**/sign-in');
      await elsewhereCtx.close();
      await owner.waitForURL('**/sign-in', { timeout: 30_000 });
      expect(await owner.getByRole('status').textContent()).toContain('session ended');
    } finally {
      await ownerCtx.close();
      await viewerCtx.close();
    }
  });
});
