import { tmpdir } from 'node:os';
import { sql } from 'drizzle-orm';
import type { PrivateKeyAccount } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../db/client';
import { type Api, createApi, createCaller, loadConfig, type Session } from '../../index';
import { failure, testConfig } from '../../testing';
import { CHAIN_ID, type PaymentsFixture, setupPayments, USDC } from './testing';

let f: PaymentsFixture;
let alice: Session;
let bob: Session;
let viewer: Session;
let projectId: string;
let bobsProject: string;
let alicesWallet: PrivateKeyAccount;
let bobsWallet: PrivateKeyAccount;

const account = (i: number) => {
  const a = f.evm.accounts[i];
  if (!a) throw new Error(`no account ${i}`);
  return a;
};

beforeAll(async () => {
  f = await setupPayments();
  await f.t.signUp('Admin');
  alice = await f.t.signUp('Alice');
  bob = await f.t.signUp('Bob');
  viewer = await f.t.signUp('Viewer');
  projectId = (await f.t.caller(alice.accessToken).projects.create({ name: 'Alpha' })).id;
  bobsProject = (await f.t.caller(bob.accessToken).projects.create({ name: 'Beta' })).id;
  await f.t
    .caller(alice.accessToken)
    .projects.members.add({ projectId, email: viewer.user.email, role: 'viewer' });
  alicesWallet = account(1);
  bobsWallet = account(2);
  await f.link(alice, alicesWallet);
  await f.link(bob, bobsWallet);
  await f.fund(alicesWallet.address, 1_000n * USDC);
  await f.fund(bobsWallet.address, 1_000n * USDC);
});
afterAll(() => f.close());

async function ledgerRows(reference: string) {
  return rowsOf<{ kind: string; amount: string }>(
    await f.t.api.database.db.execute(
      sql`select kind, amount::text from ledger_entries where reference = ${reference}`,
    ),
  );
}

describe('payments.confirmDeposit', () => {
  it('tells the chain, token and deposit address', async () => {
    expect(await f.t.caller(viewer.accessToken).payments.config()).toEqual({
      chainId: CHAIN_ID,
      chainName: 'Arc Testnet',
      usdcAddress: f.usdc,
      depositAddress: f.depositAddress,
      confirmations: 3,
    });
  });

  it('credits exactly the amount once the block has the confirmations', async () => {
    const before = await f.balance(projectId);
    const txHash = await f.pay(alicesWallet, 12_345_678n);
    await f.evm.mine(2);
    const payment = await f.t
      .caller(alice.accessToken)
      .payments.confirmDeposit({ projectId, txHash });
    const receipt = await f.evm.client.getTransactionReceipt({ hash: txHash });
    expect(payment).toMatchObject({
      projectId,
      chainId: CHAIN_ID,
      txHash,
      blockNumber: Number(receipt.blockNumber),
      blockHash: receipt.blockHash,
      token: f.usdc,
      from: alicesWallet.address,
      to: f.depositAddress,
      amount: '12.345678',
      status: 'credited',
      claimedBy: alice.user.id,
    });
    const after = await f.balance(projectId);
    expect(after.balance - before.balance).toBe(12_345_678n);
    expect(after.ledger).toBe(after.balance);
    const logIndex = receipt.logs[0]?.logIndex;
    expect(await ledgerRows(`deposit:${CHAIN_ID}:${txHash}:${logIndex}`)).toEqual([
      { kind: 'deposit', amount: '12345678' },
    ]);
    const events = rowsOf<{ action: string; actor_id: string }>(
      await f.t.api.database.db.execute(
        sql`select action, actor_id from audit_events where target = ${payment.id}`,
      ),
    );
    expect(events).toEqual([{ action: 'payments.deposit_credited', actor_id: alice.user.id }]);
    const listed = await f.t.caller(viewer.accessToken).payments.list({ projectId });
    expect(listed.items.map((p) => p.id)).toContain(payment.id);
  });

  it('is pending until the confirmations, then credited by the watcher', async () => {
    const before = await f.balance(projectId);
    const txHash = await f.pay(alicesWallet, 5n * USDC);
    const caller = f.t.caller(alice.accessToken);
    const pending = await caller.payments.confirmDeposit({ projectId, txHash });
    expect(pending).toMatchObject({ status: 'pending', amount: '5.000000', creditedAt: null });
    expect((await f.balance(projectId)).balance).toBe(before.balance);

    const watcher = f.t.api.paymentWatcher;
    if (!watcher) throw new Error('the watcher should run when DEPOSIT_ADDRESS is set');
    await f.evm.mine(1); // two confirmations: not yet
    await watcher.tick();
    expect(
      (await caller.payments.list({ projectId })).items.find((p) => p.id === pending.id)?.status,
    ).toBe('pending');
    await f.evm.mine(1);
    await watcher.tick();
    const credited = (await caller.payments.list({ projectId })).items.find(
      (p) => p.id === pending.id,
    );
    expect(credited).toMatchObject({ status: 'credited', claimedBy: alice.user.id });
    expect((await f.balance(projectId)).balance - before.balance).toBe(5n * USDC);
    // Confirming again changes nothing.
    expect((await caller.payments.confirmDeposit({ projectId, txHash })).status).toBe('credited');
    expect((await f.balance(projectId)).balance - before.balance).toBe(5n * USDC);
  });

  it('rejects a reverted transaction and an unknown hash', async () => {
    const caller = f.t.caller(alice.accessToken);
    // More than the wallet holds: the token reverts; the gas is given to skip estimation.
    const reverted = await f.pay(alicesWallet, 10_000_000n * USDC, { gas: 200_000n });
    expect((await f.evm.client.getTransactionReceipt({ hash: reverted })).status).toBe('reverted');
    expect(await failure(caller.payments.confirmDeposit({ projectId, txHash: reverted }))).toEqual({
      code: 'BAD_REQUEST',
      appCode: 'payments.tx_failed',
    });
    const unknown = `0x${'ab'.repeat(32)}` as const;
    expect(await failure(caller.payments.confirmDeposit({ projectId, txHash: unknown }))).toEqual({
      code: 'NOT_FOUND',
      appCode: 'payments.tx_not_found',
    });
    expect(
      (await failure(caller.payments.confirmDeposit({ projectId, txHash: '0x1234' as never })))
        .code,
    ).toBe('BAD_REQUEST');
  });

  it('rejects a wrong recipient, a look-alike token and a sender not linked to the caller', async () => {
    const caller = f.t.caller(alice.accessToken);
    const elsewhere = await f.pay(alicesWallet, USDC, {
      to: privateKeyToAccount(generatePrivateKey()).address,
    });
    expect(await failure(caller.payments.confirmDeposit({ projectId, txHash: elsewhere }))).toEqual(
      {
        code: 'BAD_REQUEST',
        appCode: 'payments.wrong_recipient',
      },
    );

    await f.fund(alicesWallet.address, 50n * USDC, f.fake);
    const lookAlike = await f.pay(alicesWallet, 50n * USDC, { token: f.fake });
    expect(await failure(caller.payments.confirmDeposit({ projectId, txHash: lookAlike }))).toEqual(
      {
        code: 'BAD_REQUEST',
        appCode: 'payments.no_usdc_transfer',
      },
    );

    const stranger = account(3);
    await f.fund(stranger.address, 10n * USDC);
    const unlinked = await f.pay(stranger, 10n * USDC);
    expect(await failure(caller.payments.confirmDeposit({ projectId, txHash: unlinked }))).toEqual({
      code: 'FORBIDDEN',
      appCode: 'payments.wallet_not_linked',
    });
    // Bob's wallet is linked, but to Bob: Alice cannot claim his deposit either.
    const bobs = await f.pay(bobsWallet, USDC);
    expect(await failure(caller.payments.confirmDeposit({ projectId, txHash: bobs }))).toEqual({
      code: 'FORBIDDEN',
      appCode: 'payments.wallet_not_linked',
    });
  });

  it('never credits a hash twice: replays by another user, and 20 concurrent confirms', async () => {
    const before = await f.balance(projectId);
    const txHash = await f.pay(alicesWallet, 7n * USDC);
    await f.evm.mine(2);
    const caller = f.t.caller(alice.accessToken);
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => caller.payments.confirmDeposit({ projectId, txHash })),
    );
    const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    expect(ok).toHaveLength(20);
    expect(new Set(ok.map((p) => p.id)).size).toBe(1);
    expect(ok.every((p) => p.status === 'credited')).toBe(true);
    expect((await f.balance(projectId)).balance - before.balance).toBe(7n * USDC);
    expect(await ledgerRows(`deposit:${CHAIN_ID}:${txHash}:0`)).toHaveLength(1);

    // Bob replays Alice's hash for his own project.
    expect(
      await failure(
        f.t.caller(bob.accessToken).payments.confirmDeposit({ projectId: bobsProject, txHash }),
      ),
    ).toEqual({ code: 'CONFLICT', appCode: 'payments.already_claimed' });
    // ...or for hers, which he is not a member of.
    expect(
      await failure(f.t.caller(bob.accessToken).payments.confirmDeposit({ projectId, txHash })),
    ).toEqual({ code: 'NOT_FOUND', appCode: 'projects.not_found' });
    // A viewer may look, not deposit.
    expect(
      await failure(f.t.caller(viewer.accessToken).payments.confirmDeposit({ projectId, txHash })),
    ).toEqual({ code: 'FORBIDDEN', appCode: 'projects.role_insufficient' });
    expect((await f.balance(bobsProject)).balance).toBe(0n);
    const after = await f.balance(projectId);
    expect(after.ledger).toBe(after.balance);
  });

  it('claims every deposit log of a transaction and ignores transfers elsewhere', async () => {
    const before = await f.balance(projectId);
    const elsewhere = privateKeyToAccount(generatePrivateKey()).address;
    const txHash = await f.evm.write({
      from: alicesWallet,
      to: f.usdc,
      contract: 'TestToken',
      functionName: 'transferMany',
      args: [
        [f.depositAddress, elsewhere, f.depositAddress],
        [USDC, 2n * USDC, 3n * USDC],
      ],
    });
    await f.evm.mine(2);
    const payment = await f.t
      .caller(alice.accessToken)
      .payments.confirmDeposit({ projectId, txHash });
    expect(payment).toMatchObject({ amount: '1.000000', status: 'credited' });
    const mine = (await f.t.caller(alice.accessToken).payments.list({ projectId })).items.filter(
      (p) => p.txHash === txHash,
    );
    expect(mine.map((p) => p.amount).sort()).toEqual(['1.000000', '3.000000']);
    expect((await f.balance(projectId)).balance - before.balance).toBe(4n * USDC);
  });

  it('credits a deposit sent from a linked smart-contract wallet', async () => {
    const owner = account(4);
    const contract = await f.evm.deploy(owner, 'TestSmartWallet', [owner.address]);
    const caller = f.t.caller(alice.accessToken);
    const { message } = await caller.wallets.challenge({ address: contract });
    await caller.wallets.link({ message, signature: await owner.signMessage({ message }) });
    await f.fund(contract, 9n * USDC);
    const { encodeFunctionData } = await import('viem');
    const { artifacts } = await import('../../chain/testing/evm');
    const data = encodeFunctionData({
      abi: artifacts().TestToken?.abi ?? [],
      functionName: 'transfer',
      args: [f.depositAddress, 9n * USDC],
    });
    const txHash = await f.evm.write({
      from: owner,
      to: contract,
      contract: 'TestSmartWallet',
      functionName: 'execute',
      args: [f.usdc, data],
    });
    await f.evm.mine(2);
    const payment = await caller.payments.confirmDeposit({ projectId, txHash });
    expect(payment).toMatchObject({ from: contract, amount: '9.000000', status: 'credited' });
  });
});

/** Another API over the same database with other settings (sessions carry over). */
async function withApi(env: Record<string, string>, run: (api: Api) => Promise<void>) {
  const api = await createApi({
    config: testConfig({ CHAIN_RPC_URL: f.evm.url, PAYMENTS_WATCH_INTERVAL_MS: '3600000', ...env }),
    database: f.t.api.database,
    migrate: false,
  });
  try {
    await run(api);
  } finally {
    await api.close();
  }
}

const callerOf = (api: Api, session: Session) =>
  createCaller(api.createContext({ token: session.accessToken, ip: '127.0.0.1', requestId: 'r' }));

describe('payments configuration', () => {
  it('validates the chain settings at start-up, naming the variable', () => {
    const base = { JWT_SECRET: 'x'.repeat(40), DATA_DIR: tmpdir() };
    expect(loadConfig(base).chain).toMatchObject({
      id: CHAIN_ID,
      rpcUrl: undefined,
      usdcAddress: '0x3600000000000000000000000000000000000000',
      depositAddress: undefined,
      confirmations: 3,
    });
    expect(() => loadConfig({ ...base, CHAIN_ID: '8453' })).toThrow(/CHAIN_RPC_URL: required/);
    // A mixed-case address with a broken EIP-55 checksum is a typo, not an address.
    const broken = f.depositAddress.replace(/[a-f]/, (c) => c.toUpperCase());
    expect(() => loadConfig({ ...base, DEPOSIT_ADDRESS: broken })).toThrow(/DEPOSIT_ADDRESS/);
    expect(() => loadConfig({ ...base, USDC_ADDRESS: '0x1234' })).toThrow(/USDC_ADDRESS/);
    expect(
      loadConfig({ ...base, DEPOSIT_ADDRESS: f.depositAddress.toLowerCase() }).chain.depositAddress,
    ).toBe(f.depositAddress);
  });

  it('answers PRECONDITION_FAILED naming DEPOSIT_ADDRESS when it is unset; no watcher runs', async () => {
    await withApi({ USDC_ADDRESS: f.usdc }, async (api) => {
      expect(api.paymentWatcher).toBeNull();
      const caller = callerOf(api, alice);
      expect((await caller.payments.config()).depositAddress).toBeNull();
      const call = caller.payments.confirmDeposit({ projectId, txHash: `0x${'00'.repeat(32)}` });
      expect(await failure(call)).toEqual({
        code: 'PRECONDITION_FAILED',
        appCode: 'payments.not_configured',
      });
      await expect(call).rejects.toThrow(/DEPOSIT_ADDRESS/);
    });
  });

  it('refuses a USDC_ADDRESS without 6 decimals and an RPC serving another chain', async () => {
    const eighteen = await f.evm.deploy(f.treasury, 'TestToken', ['Wrapped', 'W', 18, 10n ** 24n]);
    const txHash = await f.pay(alicesWallet, USDC);
    const envs: Record<string, string>[] = [
      { USDC_ADDRESS: eighteen },
      { USDC_ADDRESS: f.usdc, CHAIN_ID: '31337' },
    ];
    for (const env of envs) {
      await withApi({ DEPOSIT_ADDRESS: f.depositAddress, ...env }, async (api) => {
        const call = callerOf(api, alice).payments.confirmDeposit({ projectId, txHash });
        expect(await failure(call)).toEqual({
          code: 'PRECONDITION_FAILED',
          appCode: 'payments.misconfigured',
        });
      });
    }
    // Nothing was recorded by the misconfigured instances.
    expect(
      rowsOf(
        await f.t.api.database.db.execute(sql`select 1 from payments where tx_hash = ${txHash}`),
      ),
    ).toEqual([]);
  });
});
