import type { TestEvm } from '@smartspace/api/testing/evm';
import type { BrowserContext } from 'playwright-core';
import { createWalletClient, type Hex, http, type PrivateKeyAccount, toHex } from 'viem';

/**
 * A browser wallet for tests: `window.ethereum` (EIP-1193) in every page of a context,
 * answered in Node by a viem local account on the test EVM. Accounts, chain id, signing and
 * sending are the wallet's; every other call goes to the chain, as a real wallet's would.
 */
export interface TestWallet {
  readonly account: PrivateKeyAccount;
  /** The messages signed so far (personal_sign), in order. */
  readonly signed: string[];
  /** The transactions sent so far (eth_sendTransaction). */
  readonly sent: Hex[];
  /** The next signature or transaction request is refused, as a user pressing "Reject". */
  rejectNext(): void;
  /** From now on, the wallet answers for another account (the user switched accounts). */
  use(account: PrivateKeyAccount): void;
}

const BINDING = '__smartspaceTestWallet';

// Runs in the page before its scripts. Errors keep their EIP-1193 code, which viem maps
// (4001: UserRejectedRequestError).
const PROVIDER = `
window.ethereum = {
  isSmartSpaceTestWallet: true,
  async request({ method, params }) {
    const out = await window.${BINDING}(method, params ?? []);
    if (out.error) {
      const err = new Error(out.error.message);
      err.code = out.error.code;
      throw err;
    }
    return out.result;
  },
  on() {},
  removeListener() {},
};`;

interface TxParams {
  to?: Hex;
  data?: Hex;
  value?: Hex;
  gas?: Hex;
}

export async function installTestWallet(
  context: BrowserContext,
  opts: { account: PrivateKeyAccount; evm: TestEvm },
): Promise<TestWallet> {
  let account = opts.account;
  let reject = false;
  const signed: string[] = [];
  const sent: Hex[] = [];
  const refuse = () => {
    reject = false;
    return { error: { code: 4001, message: 'User rejected the request.' } };
  };

  await context.exposeBinding(BINDING, async (_source, method: string, params: unknown[]) => {
    try {
      switch (method) {
        case 'eth_requestAccounts':
        case 'eth_accounts':
          return { result: [account.address] };
        case 'eth_chainId':
          return { result: toHex(opts.evm.chain.id) };
        case 'personal_sign': {
          if (reject) return refuse();
          const [raw] = params as [Hex, string];
          signed.push(Buffer.from(raw.slice(2), 'hex').toString('utf8'));
          return { result: await account.signMessage({ message: { raw } }) };
        }
        case 'eth_sendTransaction': {
          if (reject) return refuse();
          const [tx] = params as [TxParams];
          const wallet = createWalletClient({
            account,
            chain: opts.evm.chain,
            transport: http(opts.evm.url),
          });
          const hash = await wallet.sendTransaction({
            ...(tx.to ? { to: tx.to } : {}),
            ...(tx.data ? { data: tx.data } : {}),
            ...(tx.value ? { value: BigInt(tx.value) } : {}),
            ...(tx.gas ? { gas: BigInt(tx.gas) } : {}),
          });
          // ganache mines each transaction as it arrives.
          await opts.evm.client.waitForTransactionReceipt({ hash });
          sent.push(hash);
          return { result: hash };
        }
        default:
          return { result: await opts.evm.request(method, params) };
      }
    } catch (e) {
      const err = e as { code?: number; message?: string };
      return { error: { code: err.code ?? -32603, message: err.message ?? String(e) } };
    }
  });
  await context.addInitScript({ content: PROVIDER });

  return {
    get account() {
      return account;
    },
    signed,
    sent,
    rejectNext() {
      reject = true;
    },
    use(next) {
      account = next;
    },
  };
}
