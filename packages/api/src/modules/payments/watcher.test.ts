import { sql } from 'drizzle-orm';
import {
  type Hash,
  keccak256,
  type PrivateKeyAccount,
  serializeTransaction,
  type TransactionSerializable,
} from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../db/client';
import type { Session } from '../../index';
import { failure } from '../../testing';
import { scanDeposits } from './scan';
import { CHAIN_ID, type PaymentsFixture, setupPayments, USDC } from './testing';
import { createDepositWatcher, type DepositWatcher } from './watcher';

let f: PaymentsFixture;
let admin: Session;
let alice: Session;
let projectId: string;
let watcher: DepositWatcher;
let auto: PrivateKeyAccount; // linked with projectId as its deposit project
let plain: PrivateKeyAccount; // linked, no deposit project
let stranger: PrivateKeyAccount; // never linked

const silent = { error() {}, warn() {}, info() {} };
const newWatcher = () =>
  createDepositWatcher({ database: f.t.api.database, chain: f.t.api.deps.chain, log: silent });

beforeAll(async () => {
  f = await setupPayments();
  admin = await f.t.signUp('Admin');
  alice = await f.t.signUp('Alice');
  projectId = (await f.t.caller(alice.accessToken).projects.create({ name: 'Alpha' })).id;
  const [, a, b, c] = f.evm.accounts;
  if (!a || !b || !c) throw new Error('accounts');
  [auto, plain, stranger] = [a, b, c];
  await f.link(alice, auto, projectId);
  await f.link(alice, plain);
  for (const w of [auto, plain, stranger]) await f.fund(w.address, 1_000n * USDC);
  if (!f.t.api.paymentWatcher) throw new Error('the watcher should run');
  watcher = f.t.api.paymentWatcher;
});
afterAll(async () => {
  await watcher.stop();
  await f.close();
});

async function paymentOf(txHash: Hash) {
  const page = await f.t.caller(admin.accessToken).payments.unmatched({ limit: 100 });
  const listed = (await f.t.caller(alice.accessToken).payments.list({ projectId, limit: 100 }))
    .items;
  return [...page.items, ...listed].find((p) => p.txHash === txHash);
}

async function audits(target: string) {
  return rowsOf<{ action: string }>(
    await f.t.api.database.db.execute(
      sql`select action from audit_events where target = ${target} order by id`,
    ),
  ).map((r) => r.action);
}

describe('deposit watcher', () => {
  it('credits deposits from a wallet with a deposit project without confirmDeposit', async () => {
    const before = await f.balance(projectId);
    const txHash = await f.pay(auto, 4n * USDC);
    await watcher.tick();
    expect(await paymentOf(txHash)).toMatchObject({
      status: 'pending',
      projectId,
      claimedBy: null,
    });
    await f.evm.mine(2);
    const pass = await watcher.tick();
    expect(pass?.credited).toBe(1);
    const payment = await paymentOf(txHash);
    expect(payment).toMatchObject({ status: 'credited', amount: '4.000000' });
    expect((await f.balance(projectId)).balance - before.balance).toBe(4n * USDC);
    expect(await audits(payment?.id ?? '')).toEqual(['payments.deposit_credited']);
  });

  it('leaves other deposits unmatched: the owner may claim, an admin may assign (audited)', async () => {
    const fromPlain = await f.pay(plain, 2n * USDC);
    const fromStranger = await f.pay(stranger, 3n * USDC);
    await f.evm.mine(2);
    await watcher.tick();
    const unmatched = (await f.t.caller(admin.accessToken).payments.unmatched({})).items;
    expect(unmatched.map((p) => p.txHash).sort()).toEqual([fromPlain, fromStranger].sort());
    expect(unmatched.every((p) => p.status === 'unmatched' && p.projectId === null)).toBe(true);
    expect((await failure(f.t.caller(alice.accessToken).payments.unmatched({}))).code).toBe(
      'FORBIDDEN',
    );

    const before = await f.balance(projectId);
    const claimed = await f.t
      .caller(alice.accessToken)
      .payments.confirmDeposit({ projectId, txHash: fromPlain });
    expect(claimed).toMatchObject({ status: 'credited', amount: '2.000000' });

    const strangers = unmatched.find((p) => p.txHash === fromStranger);
    if (!strangers) throw new Error('missing');
    expect(
      await failure(
        f.t.caller(alice.accessToken).payments.assign({ paymentId: strangers.id, projectId }),
      ),
    ).toEqual({ code: 'FORBIDDEN', appCode: 'auth.admin_required' });
    const assigned = await f.t
      .caller(admin.accessToken)
      .payments.assign({ paymentId: strangers.id, projectId });
    expect(assigned).toMatchObject({ status: 'credited', projectId, claimedBy: admin.user.id });
    expect(
      await failure(
        f.t.caller(admin.accessToken).payments.assign({ paymentId: strangers.id, projectId }),
      ),
    ).toEqual({ code: 'CONFLICT', appCode: 'payments.not_assignable' });
    expect(await audits(strangers.id)).toEqual(['payments.assigned', 'payments.deposit_credited']);
    const after = await f.balance(projectId);
    expect(after.balance - before.balance).toBe(5n * USDC);
    expect(after.ledger).toBe(after.balance);
    expect((await f.t.caller(admin.accessToken).payments.unmatched({})).items).toEqual([]);
  });

  it('is active in one instance at a time; a restart resumes from its cursor', async () => {
    const standby = newWatcher();
    expect(await standby.tick()).toBeNull(); // the API's watcher holds the lock
    expect(standby.active()).toBe(false);
    expect(f.t.api.paymentWatcher?.active()).toBe(true);
    const [cursor] = rowsOf<{ block_number: string }>(
      await f.t.api.database.db.execute(sql`select block_number::text from deposit_cursors`),
    );
    const before = await f.balance(projectId);
    const txHash = await f.pay(auto, 6n * USDC);
    await f.evm.mine(2);

    await watcher.stop();
    watcher = standby; // takes over, as another instance would
    const pass = await watcher.tick();
    expect(watcher.active()).toBe(true);
    expect(pass?.scannedFrom).toBe(Number(cursor?.block_number) + 1);
    expect(watcher.blocksBehind()).toBe((pass?.head ?? 0) - (pass?.scannedTo ?? 0));
    expect(await paymentOf(txHash)).toMatchObject({ status: 'credited' });
    // Passes again, with nothing new, credit nothing twice.
    await watcher.tick();
    await newWatcher().tick(); // a stand-by: null, does nothing
    const after = await f.balance(projectId);
    expect(after.balance - before.balance).toBe(6n * USDC);
    expect(after.ledger).toBe(after.balance);
    const deposits = rowsOf<{ n: number }>(
      await f.t.api.database.db.execute(
        sql`select count(*)::int as n from ledger_entries where kind = 'deposit' and project_id = ${projectId}`,
      ),
    );
    expect(deposits[0]?.n).toBe(4);
  });

  it('reverses a credit whose block left the chain, and credits it again when re-mined', async () => {
    const snapshot = await f.evm.snapshot();
    const before = await f.balance(projectId);
    const txHash = await f.pay(auto, 8n * USDC);
    const raw = await signedRaw(txHash);
    await f.evm.mine(2);
    await watcher.tick();
    const credited = await paymentOf(txHash);
    expect(credited?.status).toBe('credited');
    expect((await f.balance(projectId)).balance - before.balance).toBe(8n * USDC);

    // A reorg: the blocks since the snapshot are replaced by others at the same heights.
    await f.evm.revert(snapshot);
    await f.evm.mine(4, Math.floor(Date.now() / 1000) + 3600);
    const canonical = await f.evm.client.getBlock({
      blockNumber: BigInt(credited?.blockNumber ?? 0),
    });
    expect(canonical.hash).not.toBe(credited?.blockHash);
    const pass = await watcher.tick();
    expect(pass?.reversed).toBe(1);
    // The project still sees it, as reversed.
    expect(await paymentOf(txHash)).toMatchObject({ status: 'reversed', creditedAt: null });
    const afterReorg = await f.balance(projectId);
    expect(afterReorg.balance).toBe(before.balance);
    expect(afterReorg.ledger).toBe(afterReorg.balance);
    const reference = `deposit:${CHAIN_ID}:${txHash}:0`;
    const entries = rowsOf<{ kind: string; amount: string; reference: string }>(
      await f.t.api.database.db.execute(
        sql`select kind, amount::text, reference from ledger_entries
            where reference like ${`%${txHash}%`} order by created_at, reference`,
      ),
    );
    expect(entries).toEqual([
      { kind: 'deposit', amount: String(8n * USDC), reference },
      { kind: 'reversal', amount: String(-8n * USDC), reference: `reversal:${reference}` },
    ]);
    expect(await audits(credited?.id ?? '')).toEqual([
      'payments.deposit_credited',
      'payments.deposit_reversed',
    ]);

    // The same signed transaction is mined again on the new chain.
    expect(await f.evm.request('eth_sendRawTransaction', [raw])).toBe(txHash);
    await f.evm.mine(2);
    await watcher.tick();
    expect(await paymentOf(txHash)).toMatchObject({ id: credited?.id, status: 'credited' });
    const final = await f.balance(projectId);
    expect(final.balance - before.balance).toBe(8n * USDC);
    expect(final.ledger).toBe(final.balance);
    expect(
      rowsOf(
        await f.t.api.database.db.execute(
          sql`select 1 from ledger_entries where reference = ${`${reference}:1`}`,
        ),
      ),
    ).toHaveLength(1);
  });

  it('confirmDeposit racing watcher passes credits once; every confirm answers the same', async () => {
    const before = await f.balance(projectId);
    const txHash = await f.pay(auto, 3n * USDC);
    await f.evm.mine(2);
    const deps = { db: f.t.api.database.db, chain: f.t.api.deps.chain, log: silent };
    const caller = f.t.caller(alice.accessToken);
    const [confirms, scans] = await Promise.all([
      Promise.allSettled(
        Array.from({ length: 20 }, () => caller.payments.confirmDeposit({ projectId, txHash })),
      ),
      // Passes of several instances at once (the lock saves work, it does not keep money).
      Promise.allSettled(Array.from({ length: 3 }, () => scanDeposits(deps))),
    ]);
    expect(scans.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    const ok = confirms.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    expect(ok).toHaveLength(20);
    expect(new Set(ok.map((p) => p.id)).size).toBe(1);
    expect(ok.every((p) => p.status === 'credited')).toBe(true);
    const after = await f.balance(projectId);
    expect(after.balance - before.balance).toBe(3n * USDC);
    expect(after.ledger).toBe(after.balance);
    const entries = rowsOf(
      await f.t.api.database.db.execute(
        sql`select 1 from ledger_entries where reference like ${`deposit:${CHAIN_ID}:${txHash}:%`}`,
      ),
    );
    expect(entries).toHaveLength(1);
  });

  it('lists unmatched deposits with no input at all, as with {}', async () => {
    const txHash = await f.pay(stranger, 1n * USDC);
    await f.evm.mine(2);
    await watcher.tick();
    const c = f.t.caller(admin.accessToken);
    const page = await c.payments.unmatched();
    expect(page.items.map((p) => p.txHash)).toContain(txHash);
    expect(page).toEqual(await c.payments.unmatched({}));
    expect((await failure(f.t.caller(alice.accessToken).payments.unmatched())).code).toBe(
      'FORBIDDEN',
    );
  });
});

/** The signed bytes of a mined transaction, to broadcast it again after a reorg. */
async function signedRaw(hash: Hash) {
  const tx = await f.evm.client.getTransaction({ hash });
  const raw = serializeTransaction(
    {
      type: 'eip1559',
      chainId: CHAIN_ID,
      nonce: tx.nonce,
      to: tx.to,
      value: tx.value,
      data: tx.input,
      gas: tx.gas,
      maxFeePerGas: tx.maxFeePerGas,
      maxPriorityFeePerGas: tx.maxPriorityFeePerGas,
      accessList: tx.accessList ?? [],
    } as TransactionSerializable,
    { r: tx.r, s: tx.s, yParity: tx.yParity ?? 0 },
  );
  expect(keccak256(raw)).toBe(hash);
  return raw;
}
