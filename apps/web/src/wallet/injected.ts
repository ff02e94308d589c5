import {
  type Address,
  createWalletClient,
  custom,
  type EIP1193Provider,
  erc20Abi,
  type Hash,
  hexToNumber,
  parseUnits,
} from 'viem';

declare global {
  interface Window {
    ethereum?: EIP1193Provider;
  }
}

/** The wallet the browser injected (EIP-1193), if any: MetaMask, Rabby, Coinbase, … */
export function injectedProvider(): EIP1193Provider | null {
  return typeof window !== 'undefined' && window.ethereum ? window.ethereum : null;
}

function walletClient(provider: EIP1193Provider) {
  return createWalletClient({ transport: custom(provider) });
}

/** Asks the wallet for its accounts (it may show a prompt) and returns the selected one. */
export async function requestAccount(provider: EIP1193Provider): Promise<Address> {
  const [address] = await walletClient(provider).requestAddresses();
  if (!address) throw new Error('The wallet shared no account');
  return address;
}

/** `personal_sign` of a text message (the SIWE challenge) by `account`. */
export function signText(provider: EIP1193Provider, account: Address, message: string) {
  return walletClient(provider).signMessage({ account, message });
}

/** The chain the wallet is on, and its latest block (to count confirmations). */
export async function walletChain(
  provider: EIP1193Provider,
): Promise<{ chainId: number; head: number }> {
  const [chainId, head] = await Promise.all([
    provider.request({ method: 'eth_chainId' }),
    provider.request({ method: 'eth_blockNumber' }),
  ]);
  return { chainId: hexToNumber(chainId), head: hexToNumber(head) };
}

/**
 * Sends `amount` USDC (a decimal string, 6 decimals) from `account` to `to` with an ERC-20
 * transfer signed in the wallet. The wallet must be on `chainId`: viem refuses otherwise, so
 * nothing is sent on the wrong chain.
 */
export function sendUsdc(opts: {
  provider: EIP1193Provider;
  account: Address;
  chainId: number;
  usdc: Address;
  to: Address;
  amount: string;
}): Promise<Hash> {
  const chain = {
    id: opts.chainId,
    name: `chain ${opts.chainId}`,
    nativeCurrency: { name: 'native', symbol: 'NATIVE', decimals: 18 },
    rpcUrls: { default: { http: [] } },
  } as const;
  return walletClient(opts.provider).writeContract({
    account: opts.account,
    chain,
    address: opts.usdc,
    abi: erc20Abi,
    functionName: 'transfer',
    args: [opts.to, parseUnits(opts.amount, 6)],
  });
}
