import { startTestEvm, type TestEvm } from '@smartspace/api/testing/evm';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { type Address, type Hash, type PrivateKeyAccount, parseUnits } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ensureBuilt, launchBrowser, type Server, snapsIn, startServer } from './harness';
import { installTestWallet, type TestWallet } from './wallet';

/** This file's screenshots, under test-results/billing/. */
const snap = snapsIn('billing');

// Arc testnet's id (the default chain's definition), served by the local EVM.
const CHAIN_ID = 5042002;
const PASSWORD = 'correct horse battery staple';

let evm: TestEvm;
let usdc: Address;
let depositAddress: Address;
let treasury: PrivateKeyAccount;
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

async function register(email: string, name: string): Promise<string> {
  const s = await call<{ accessToken: string }>('auth.register', {
    email,
    name,
    password: PASSWORD,
  });
  return s.accessToken;
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

/** A USDC transfer signed outside the browser (another wallet app). */
function transfer(from: PrivateKeyAccount, to: Address, amount: string): Promise<Hash> {
  return evm.write({
    from,
    to: usdc,
    contract: 'TestToken',
    functionName: 'transfer',
    args: [to, parseUnits(amount, 6)],
  });
}

beforeAll(async () => {
  ensureBuilt();
  evm = await startTestEvm({ chainId: CHAIN_ID });
  const [first] = evm.accounts;
  if (!first) throw new Error('no accounts');
  treasury = first;
  usdc = await evm.deploy(treasury, 'TestToken', ['USD Coin', 'USDC', 6, parseUnits('1000000', 6)]);
  depositAddress = privateKeyToAccount(generatePrivateKey()).address;
  server = await startServer({
    CHAIN_ID: String(CHAIN_ID),
    CHAIN_RPC_URL: evm.url,
    USDC_ADDRESS: usdc,
    DEPOSIT_ADDRESS: depositAddress,
    CHAIN_CONFIRMATIONS: '3',
    PAYMENTS_WATCH_INTERVAL_MS: '500',
  });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  await evm?.close();
});

describe('billing in Chromium, on a local EVM', () => {
  test('link a wallet with SIWE, deposit USDC, claim it by hash, watch it credited live; admins assign unmatched deposits', async () => {
    // The first account is the platform admin; the payer is a plain user.
    await register('admin@example.com', 'Ada Root');
    const payerToken = await register('payer@example.com', 'Payer');
    const project = await call<{ id: string }>('projects.create', { name: 'Treasury' }, payerToken);
    const [, payer, stranger] = evm.accounts;
    if (!payer || !stranger) throw new Error('no accounts');
    await transfer(treasury, payer.address, '100');
    await transfer(treasury, stranger.address, '100');

    const ctx = await browser.newContext({
      baseURL: server.origin,
      viewport: { width: 1280, height: 900 },
    });
    const wallet: TestWallet = await installTestWallet(ctx, { account: payer, evm });
    const page = await signIn(ctx, 'payer@example.com');
    // Not an admin: no way into the admin area from the navigation.
    expect(await page.getByRole('link', { name: 'Admin' }).count()).toBe(0);
    await page.goto(`/projects/${project.id}/chat`);
    await page
      .getByRole('navigation', { name: 'Project pages' })
      .getByRole('link', { name: 'Billing' })
      .click();
    await page.waitForURL(`**/projects/${project.id}/billing`);
    const balance = page.getByLabel('Balance');
    await expect.poll(() => balance.textContent()).toBe('0.000000 USDC');
    await page.getByText('No wallet linked yet').waitFor();
    await page.getByText(depositAddress).waitFor();
    await snap(page, 'billing-empty');
    // Marks this document: a reload would lose it.
    await page.evaluate(() => {
      (window as unknown as { sameDocument: boolean }).sameDocument = true;
    });

    // The user refuses to sign: nothing is linked, and the page says why.
    wallet.rejectNext();
    await page.getByRole('button', { name: 'Link a wallet' }).click();
    await page.getByRole('alert').filter({ hasText: 'User rejected the request.' }).waitFor();
    expect(await page.getByRole('table', { name: 'Linked wallets' }).count()).toBe(0);

    // SIWE: challenge, personal_sign in the wallet, link.
    await page.getByRole('button', { name: 'Link a wallet' }).click();
    const linked = page.getByRole('table', { name: 'Linked wallets' });
    await linked.getByText(payer.address).waitFor();
    expect(await linked.getByText('Treasury').count()).toBe(1);
    expect(wallet.signed).toHaveLength(1);
    expect(wallet.signed[0]).toContain('wants you to sign in with your Ethereum account');
    expect(wallet.signed[0]).toContain(payer.address);
    expect(wallet.signed[0]).toContain(`Chain ID: ${CHAIN_ID}`);

    // The amount shapes the QR code (an EIP-681 payment request).
    const amount = page.getByLabel('Amount to send (USDC)');
    await amount.fill('12.5.0');
    await page.getByText('A positive amount with at most 6 decimals').waitFor();
    await amount.fill('12.5');
    await page.getByRole('img', { name: 'QR code: pay 12.5 USDC' }).waitFor();

    // A hash of nothing mined is refused with the server's reason.
    const hashInput = page.getByRole('textbox', { name: 'Transaction hash' });
    const sentIt = page.getByRole('button', { name: 'I sent it' });
    await hashInput.fill('0x1234');
    expect(await sentIt.isDisabled()).toBe(true);
    await hashInput.fill(`0x${'ab'.repeat(32)}`);
    await sentIt.click();
    await page
      .getByRole('alert')
      .filter({ hasText: 'No mined transaction with this hash' })
      .waitFor();

    // USDC from a wallet that is not linked is not this user's to claim.
    const strangers = await transfer(stranger, depositAddress, '3');
    await hashInput.fill(strangers);
    await sentIt.click();
    await page.getByRole('alert').filter({ hasText: 'not linked to your account' }).waitFor();

    // Sent from the linked wallet in another app; claimed by hash: pending, then credited
    // as blocks come, while the page stays put.
    const hash = await transfer(payer, depositAddress, '12.5');
    await hashInput.fill(hash);
    await sentIt.click();
    await page.getByRole('status').filter({ hasText: '12.500000 USDC received' }).waitFor();
    const payments = page.getByRole('table', { name: 'Payments' });
    const row = payments.getByRole('row').filter({ hasText: '12.500000 USDC' });
    await row.getByText('pending: 1 of 3 confirmations').waitFor();
    await snap(page, 'billing-pending', { fullPage: true });
    expect(await balance.textContent()).toBe('0.000000 USDC');
    await evm.mine(1);
    await row.getByText('pending: 2 of 3 confirmations').waitFor({ timeout: 15_000 });
    await evm.mine(1);
    await expect.poll(() => row.getAttribute('data-status'), { timeout: 20_000 }).toBe('credited');
    await expect.poll(() => balance.textContent(), { timeout: 20_000 }).toBe('12.500000 USDC');

    // Sent from the browser wallet itself: the page claims the hash it got back.
    await amount.fill('2.25');
    await page.getByRole('button', { name: 'Send with my browser wallet' }).click();
    await page.getByRole('status').filter({ hasText: '2.250000 USDC received' }).waitFor();
    expect(wallet.sent).toHaveLength(1);
    expect(await hashInput.inputValue()).toBe(wallet.sent[0]);
    await evm.mine(2);
    await expect.poll(() => balance.textContent(), { timeout: 20_000 }).toBe('14.750000 USDC');
    // Claiming the same transaction again credits nothing more.
    await sentIt.click();
    await page.getByRole('status').filter({ hasText: '2.250000 USDC credited' }).waitFor();
    expect(await balance.textContent()).toBe('14.750000 USDC');
    expect(await payments.getByRole('row').count()).toBe(3); // header + two payments
    await snap(page, 'billing-credited', { fullPage: true });
    expect(
      await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument),
    ).toBe(true);

    // The stranger's deposit, seen by the watcher, waits for an admin, who gives it to the
    // project.
    const adminCtx = await browser.newContext({
      baseURL: server.origin,
      viewport: { width: 1280, height: 900 },
    });
    const admin = await signIn(adminCtx, 'admin@example.com');
    await admin.getByRole('link', { name: 'Admin' }).click();
    await admin.getByRole('link', { name: 'Payments and credits' }).click();
    const unmatched = admin.getByRole('table', { name: 'Unmatched deposits' });
    await unmatched.getByText(stranger.address).waitFor({ timeout: 20_000 });
    await snap(admin, 'admin-unmatched');
    const target = admin.getByRole('combobox', {
      name: `Project for 3.000000 USDC from ${stranger.address}`,
    });
    await target.fill('no such project');
    await admin.getByRole('button', { name: 'Assign' }).click();
    await admin.getByRole('alert').filter({ hasText: 'Project: a project id' }).waitFor();
    await target.fill(project.id);
    await admin.getByRole('button', { name: 'Assign' }).click();
    await admin.getByText('No unmatched deposits.').waitFor();
    await adminCtx.close();
    await expect.poll(() => balance.textContent(), { timeout: 30_000 }).toBe('17.750000 USDC');

    // Unlink: the wallet is gone from the list.
    await page.getByRole('button', { name: `Unlink ${payer.address}` }).click();
    await page.getByText('No wallet linked yet').waitFor();
    await ctx.close();
  });

  test('without a browser wallet the page says how to get one, and viewers cannot claim', async () => {
    const ownerToken = await register('owner@example.com', 'Owner');
    await register('viewer@example.com', 'Viewer');
    const project = await call<{ id: string }>('projects.create', { name: 'Ledger' }, ownerToken);
    await call(
      'projects.members.add',
      { projectId: project.id, email: 'viewer@example.com', role: 'viewer' },
      ownerToken,
    );
    const ctx = await browser.newContext({ baseURL: server.origin });
    const page = await signIn(ctx, 'viewer@example.com');
    await page.goto(`/projects/${project.id}/billing`);
    await page.getByText('No browser wallet found').waitFor();
    await page.getByText('Claiming a deposit for this project needs the member role.').waitFor();
    expect(await page.getByRole('button', { name: 'I sent it' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Link a wallet' }).count()).toBe(0);
    await page.getByText('No payments yet.').waitFor();
    await ctx.close();
  });
});
