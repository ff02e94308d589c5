import { sql } from 'drizzle-orm';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../db/client';
import type { Session } from '../../index';
import { failure } from '../../testing';
import { APP_URL, CHAIN_ID, type PaymentsFixture, setupPayments } from './testing';

let f: PaymentsFixture;
let alice: Session;
let bob: Session;

beforeAll(async () => {
  f = await setupPayments();
  await f.t.signUp('Admin');
  alice = await f.t.signUp('Alice');
  bob = await f.t.signUp('Bob');
});
afterAll(() => f.close());

const newAccount = () => privateKeyToAccount(generatePrivateKey());

async function challenge(session: Session, address: `0x${string}`) {
  return (await f.t.caller(session.accessToken).wallets.challenge({ address })).message;
}

describe('wallets (SIWE)', () => {
  it('issues an EIP-4361 challenge bound to this app, the chain and the address', async () => {
    const account = newAccount();
    const message = await challenge(alice, account.address);
    const host = new URL(APP_URL).host;
    expect(
      message.startsWith(
        `${host} wants you to sign in with your Ethereum account:\n${account.address}\n`,
      ),
    ).toBe(true);
    expect(message).toContain(`URI: ${APP_URL}`);
    expect(message).toContain(`Chain ID: ${CHAIN_ID}`);
    expect(message).toMatch(/Nonce: [a-zA-Z0-9]{8,}/);
    expect(message).toMatch(/Expiration Time: /);
  });

  it('links a wallet that signed its challenge, once; lists and unlinks it (audited)', async () => {
    const account = newAccount();
    const caller = f.t.caller(alice.accessToken);
    const message = await challenge(alice, account.address);
    const signature = await account.signMessage({ message });
    const wallet = await caller.wallets.link({ message, signature });
    expect(wallet).toMatchObject({ address: account.address, chainId: CHAIN_ID, projectId: null });
    expect((await caller.wallets.list()).map((w) => w.id)).toContain(wallet.id);
    expect((await f.t.caller(bob.accessToken).wallets.list()).map((w) => w.id)).not.toContain(
      wallet.id,
    );

    // The nonce is spent: the same signed message cannot link again.
    expect(await failure(caller.wallets.link({ message, signature }))).toEqual({
      code: 'BAD_REQUEST',
      appCode: 'wallets.nonce_invalid',
    });

    expect(
      await failure(f.t.caller(bob.accessToken).wallets.unlink({ walletId: wallet.id })),
    ).toEqual({
      code: 'NOT_FOUND',
      appCode: 'wallets.not_found',
    });
    expect(await caller.wallets.unlink({ walletId: wallet.id })).toEqual({ ok: true });
    expect(await caller.wallets.list()).toEqual([]);
    const actions = await f.t.api.database.db.execute(
      sql`select action from audit_events where target = ${wallet.id} order by id`,
    );
    const rows = Array.isArray(actions) ? actions : (actions as { rows: unknown[] }).rows;
    expect(rows.map((r) => (r as { action: string }).action)).toEqual([
      'wallets.linked',
      'wallets.unlinked',
    ]);
  });

  it('refuses a message for another domain, even correctly signed', async () => {
    const account = newAccount();
    const message = (await challenge(alice, account.address))
      .replace('app.example.com wants you', 'evil.example.com wants you')
      .replace(`URI: ${APP_URL}`, 'URI: https://evil.example.com');
    const signature = await account.signMessage({ message });
    expect(
      await failure(f.t.caller(alice.accessToken).wallets.link({ message, signature })),
    ).toEqual({ code: 'BAD_REQUEST', appCode: 'wallets.domain_mismatch' });
  });

  it('refuses another chain, an expired nonce, and a nonce issued to someone else', async () => {
    const account = newAccount();
    const caller = f.t.caller(alice.accessToken);

    const otherChain = (await challenge(alice, account.address)).replace(
      `Chain ID: ${CHAIN_ID}`,
      'Chain ID: 1',
    );
    expect(
      await failure(
        caller.wallets.link({
          message: otherChain,
          signature: await account.signMessage({ message: otherChain }),
        }),
      ),
    ).toEqual({ code: 'BAD_REQUEST', appCode: 'wallets.chain_mismatch' });

    const expired = await challenge(alice, account.address);
    await f.t.api.database.db.execute(
      sql`update wallet_challenges set expires_at = now() - interval '1 second'
          where nonce = ${/Nonce: (\w+)/.exec(expired)?.[1] ?? ''}`,
    );
    expect(
      await failure(
        caller.wallets.link({
          message: expired,
          signature: await account.signMessage({ message: expired }),
        }),
      ),
    ).toEqual({ code: 'BAD_REQUEST', appCode: 'wallets.nonce_invalid' });

    // Bob presents a message issued to Alice: the nonce is bound to the user who asked.
    const alices = await challenge(alice, account.address);
    const signature = await account.signMessage({ message: alices });
    expect(
      await failure(f.t.caller(bob.accessToken).wallets.link({ message: alices, signature })),
    ).toEqual({ code: 'BAD_REQUEST', appCode: 'wallets.nonce_invalid' });
    // Still usable by Alice: a refused attempt does not burn it.
    expect((await caller.wallets.link({ message: alices, signature })).address).toBe(
      account.address,
    );
  });

  it('refuses a signature by another key, and a message for another address', async () => {
    const account = newAccount();
    const intruder = newAccount();
    const caller = f.t.caller(alice.accessToken);
    const message = await challenge(alice, account.address);
    expect(
      await failure(
        caller.wallets.link({ message, signature: await intruder.signMessage({ message }) }),
      ),
    ).toEqual({ code: 'BAD_REQUEST', appCode: 'wallets.signature_invalid' });

    // The challenge was for `account`; swapping in the intruder's address breaks the binding.
    const swapped = message.replace(account.address, intruder.address);
    expect(
      await failure(
        caller.wallets.link({
          message: swapped,
          signature: await intruder.signMessage({ message: swapped }),
        }),
      ),
    ).toEqual({ code: 'BAD_REQUEST', appCode: 'wallets.nonce_invalid' });

    expect(await failure(caller.wallets.link({ message: 'hello', signature: '0x1234' }))).toEqual({
      code: 'BAD_REQUEST',
      appCode: 'wallets.message_invalid',
    });
  });

  it('keeps a wallet to one user: linking it to another account is a CONFLICT', async () => {
    const account = newAccount();
    const wallet = await f.link(alice, account);
    const err = await failure(f.link(bob, account));
    expect(err).toEqual({ code: 'CONFLICT', appCode: 'wallets.already_linked' });
    // Once Alice lets go, Bob may link it.
    await f.t.caller(alice.accessToken).wallets.unlink({ walletId: wallet.id });
    expect((await f.link(bob, account)).address).toBe(account.address);
  });

  it('20 concurrent links of one address: one wallet row; the owner gets it, others CONFLICT', async () => {
    const account = newAccount();
    // Each call answers its own challenge, as retries from a wallet app would.
    const signed = async (session: Session) => {
      const message = await challenge(session, account.address);
      return { session, message, signature: await account.signMessage({ message }) };
    };
    const attempts = await Promise.all(
      Array.from({ length: 20 }, (_, i) => signed(i % 4 === 3 ? bob : alice)),
    );
    const results = await Promise.allSettled(
      attempts.map((a) =>
        f.t
          .caller(a.session.accessToken)
          .wallets.link({ message: a.message, signature: a.signature }),
      ),
    );
    const rows = rowsOf<{ user_id: string; id: string }>(
      await f.t.api.database.db.execute(
        sql`select id, user_id from wallets where address = ${account.address}`,
      ),
    );
    expect(rows).toHaveLength(1);
    const ownerId = rows[0]?.user_id;
    for (const [i, r] of results.entries()) {
      const mine = attempts[i]?.session.user.id === ownerId;
      if (mine) {
        expect(r.status === 'fulfilled' && r.value.id).toBe(rows[0]?.id);
      } else {
        expect(r.status).toBe('rejected');
        const reason = r.status === 'rejected' ? r.reason : null;
        expect(await failure(Promise.reject(reason))).toEqual({
          code: 'CONFLICT',
          appCode: 'wallets.already_linked',
        });
      }
    }
  });

  it('sets the deposit project only where the user may deposit', async () => {
    const account = newAccount();
    const project = await f.t.caller(alice.accessToken).projects.create({ name: 'Deposits' });
    await f.t
      .caller(alice.accessToken)
      .projects.members.add({ projectId: project.id, email: bob.user.email, role: 'viewer' });
    expect(await failure(f.link(bob, account, project.id))).toEqual({
      code: 'FORBIDDEN',
      appCode: 'projects.role_insufficient',
    });
    expect(await failure(f.link(bob, account, crypto.randomUUID()))).toEqual({
      code: 'NOT_FOUND',
      appCode: 'projects.not_found',
    });
    const linked = await f.link(alice, account, project.id);
    expect(linked.projectId).toBe(project.id);
    // Linking again with a fresh challenge updates it; null clears it.
    expect((await f.link(alice, account, null)).projectId).toBeNull();
  });

  it('links a smart-contract wallet by its owner signature (ERC-1271)', async () => {
    const owner = f.evm.accounts[2];
    if (!owner) throw new Error('no account');
    const contract = await f.evm.deploy(owner, 'TestSmartWallet', [owner.address]);
    const caller = f.t.caller(alice.accessToken);
    const { message } = await caller.wallets.challenge({ address: contract });
    const wallet = await caller.wallets.link({
      message,
      signature: await owner.signMessage({ message }),
    });
    expect(wallet.address).toBe(contract);
    // A key that does not own the contract cannot speak for it.
    const again = await caller.wallets.challenge({ address: contract });
    expect(
      await failure(
        caller.wallets.link({
          message: again.message,
          signature: await newAccount().signMessage({ message: again.message }),
        }),
      ),
    ).toEqual({ code: 'BAD_REQUEST', appCode: 'wallets.signature_invalid' });
  });
});
