import { sql } from 'drizzle-orm';
import type { Address, Hash, PrivateKeyAccount } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { startTestEvm, type TestEvm } from '../../chain/testing/evm';
import { rowsOf } from '../../db/client';
import type { Session } from '../../index';
import { createTestApi, type TestApi } from '../../testing';
import type { Wallet } from './wallets.service';

/** Arc testnet's id, so the default chain definition is the one exercised (local RPC). */
export const CHAIN_ID = 5042002;
export const APP_URL = 'https://app.example.com';
/** 1 USDC in token units (6 decimals). */
export const USDC = 1_000_000n;

export interface PaymentsFixture {
  evm: TestEvm;
  t: TestApi;
  usdc: Address;
  /** Same symbol and decimals, another contract: a look-alike. */
  fake: Address;
  depositAddress: Address;
  /** Deployer of both tokens; holds their supply. */
  treasury: PrivateKeyAccount;
  /** Sends `amount` token units from `from` to `to` (the deposit address by default). */
  pay(
    from: PrivateKeyAccount,
    amount: bigint,
    opts?: { token?: Address; to?: Address; gas?: bigint },
  ): Promise<Hash>;
  /** Gives `to` some USDC (or another token) from the treasury. */
  fund(to: Address, amount: bigint, token?: Address): Promise<void>;
  /** Challenge, sign and link, as a wallet app would. */
  link(session: Session, account: PrivateKeyAccount, projectId?: string | null): Promise<Wallet>;
  /** Current balance of a project in micro-USDC, and the sum of its ledger. */
  balance(projectId: string): Promise<{ balance: bigint; ledger: bigint }>;
  close(): Promise<void>;
}

export async function setupPayments(env: Record<string, string> = {}): Promise<PaymentsFixture> {
  const evm = await startTestEvm({ chainId: CHAIN_ID });
  const [treasury] = evm.accounts;
  if (!treasury) throw new Error('no accounts');
  const usdc = await evm.deploy(treasury, 'TestToken', ['USD Coin', 'USDC', 6, 1_000_000n * USDC]);
  const fake = await evm.deploy(treasury, 'TestToken', ['USD Coin', 'USDC', 6, 1_000_000n * USDC]);
  const depositAddress = privateKeyToAccount(generatePrivateKey()).address;
  const t = await createTestApi({
    CHAIN_ID: String(CHAIN_ID),
    CHAIN_RPC_URL: evm.url,
    USDC_ADDRESS: usdc,
    DEPOSIT_ADDRESS: depositAddress,
    CHAIN_CONFIRMATIONS: '3',
    // Tests drive the watcher with tick(); the timer only fires at start.
    PAYMENTS_WATCH_INTERVAL_MS: '3600000',
    PUBLIC_APP_URL: APP_URL,
    ...env,
  });
  const pay: PaymentsFixture['pay'] = (from, amount, opts = {}) =>
    evm.write({
      from,
      to: opts.token ?? usdc,
      contract: 'TestToken',
      functionName: 'transfer',
      args: [opts.to ?? depositAddress, amount],
      ...(opts.gas ? { gas: opts.gas } : {}),
    });
  return {
    evm,
    t,
    usdc,
    fake,
    depositAddress,
    treasury,
    pay,
    async fund(to, amount, token = usdc) {
      await evm.write({
        from: treasury,
        to: token,
        contract: 'TestToken',
        functionName: 'transfer',
        args: [to, amount],
      });
    },
    async link(session, account, projectId) {
      const caller = t.caller(session.accessToken);
      const { message } = await caller.wallets.challenge({ address: account.address });
      const signature = await account.signMessage({ message });
      return caller.wallets.link({
        message,
        signature,
        ...(projectId !== undefined ? { projectId } : {}),
      });
    },
    async balance(projectId) {
      const [row] = rowsOf<{ balance: string | null; ledger: string }>(
        await t.api.database.db.execute(sql`
          select (select balance::text from project_balances where project_id = ${projectId}) as balance,
                 (select coalesce(sum(amount), 0)::text from ledger_entries where project_id = ${projectId}) as ledger`),
      );
      return { balance: BigInt(row?.balance ?? '0'), ledger: BigInt(row?.ledger ?? '0') };
    },
    async close() {
      await t.close();
      await evm.close();
    },
  };
}
