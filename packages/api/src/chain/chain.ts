import {
  BaseError,
  BlockNotFoundError,
  type Chain,
  createPublicClient,
  defineChain,
  erc20Abi,
  HttpRequestError,
  type HttpTransport,
  http,
  TimeoutError,
  TransactionReceiptNotFoundError,
  type PublicClient as ViemPublicClient,
} from 'viem';
import type { Config } from '../config';
import { AppError } from '../lib/errors';

/**
 * viem clients for the deposit chain. Arc testnet by default; any EVM chain works
 * by configuration (CHAIN_ID + CHAIN_RPC_URL define a custom chain).
 */

/** USDC amounts on the chain: 6-decimal integers, which are micro-USDC exactly. */
export const USDC_DECIMALS = 6;

export type ChainSettings = Config['chain'];
export type PublicClient = ViemPublicClient<HttpTransport, Chain>;

export interface ChainClient {
  chain: Chain;
  client: PublicClient;
  settings: ChainSettings;
  /**
   * Checks once (until it succeeds) that the RPC serves CHAIN_ID and that USDC_ADDRESS is a
   * 6-decimal token: a wrong chain or an 18-decimal token would credit wrong amounts.
   */
  ready(): Promise<void>;
  /** Runs an RPC call; transport failures become `payments.chain_unavailable`. */
  rpc<T>(call: (client: PublicClient) => Promise<T>): Promise<T>;
}

/**
 * Arc testnet, as viem's `viem/chains` defines it (a test holds the two equal). Defined here
 * because importing one chain from `viem/chains` loads all of viem's chain definitions,
 * a large part of the server's start-up.
 */
export const arcTestnet: Chain = defineChain({
  id: 5042002,
  name: 'Arc Testnet',
  nativeCurrency: { name: 'USDC', symbol: 'USDC', decimals: 18 },
  rpcUrls: {
    default: {
      http: [
        'https://rpc.testnet.arc.io',
        'https://rpc.blockdaemon.testnet.arc.io',
        'https://rpc.drpc.testnet.arc.io',
        'https://rpc.quicknode.testnet.arc.io',
      ],
      webSocket: [
        'wss://rpc.testnet.arc.io',
        'wss://rpc.blockdaemon.testnet.arc.io:443/websocket',
        'wss://rpc.drpc.testnet.arc.io',
        'wss://rpc.quicknode.testnet.arc.io',
      ],
    },
  },
  blockExplorers: {
    default: {
      name: 'Arc Explorer',
      url: 'https://explorer.testnet.arc.io',
      apiUrl: 'https://explorer.testnet.arc.io/api',
    },
  },
  contracts: {
    multicall3: { address: '0xcA11bde05977b3631167028862bE2a173976CA11', blockCreated: 0 },
  },
  testnet: true,
});

export function resolveChain(settings: ChainSettings): Chain {
  if (settings.id === arcTestnet.id) {
    if (!settings.rpcUrl) return arcTestnet;
    return { ...arcTestnet, rpcUrls: { default: { http: [settings.rpcUrl] } } };
  }
  if (!settings.rpcUrl) throw new Error('CHAIN_RPC_URL is required for a custom chain');
  return defineChain({
    id: settings.id,
    name: `EVM chain ${settings.id}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [settings.rpcUrl] } },
  });
}

export function createChainClient(settings: ChainSettings): ChainClient {
  const chain = resolveChain(settings);
  const client = createPublicClient({
    chain,
    transport: http(chain.rpcUrls.default.http[0], { timeout: 10_000, retryCount: 1 }),
  });

  const rpc = async <T>(call: (c: PublicClient) => Promise<T>): Promise<T> => {
    try {
      return await call(client);
    } catch (err) {
      if (
        err instanceof AppError ||
        err instanceof TransactionReceiptNotFoundError ||
        err instanceof BlockNotFoundError
      ) {
        throw err;
      }
      if (err instanceof BaseError) {
        throw new AppError(
          'payments.chain_unavailable',
          'The chain RPC did not answer; try again',
          {
            error: err,
          },
        );
      }
      throw err;
    }
  };

  let checked: Promise<void> | null = null;
  const check = async () => {
    const id = await rpc((c) => c.getChainId());
    if (id !== settings.id) {
      throw new AppError(
        'payments.misconfigured',
        `The RPC at CHAIN_RPC_URL serves chain ${id}, not CHAIN_ID ${settings.id}`,
      );
    }
    const decimals = await rpc((c) =>
      c.readContract({ address: settings.usdcAddress, abi: erc20Abi, functionName: 'decimals' }),
    ).catch((err: unknown) => {
      if (err instanceof AppError && !isTransportError(err.meta?.error)) {
        throw new AppError('payments.misconfigured', 'USDC_ADDRESS does not answer decimals()');
      }
      throw err;
    });
    if (decimals !== USDC_DECIMALS) {
      throw new AppError(
        'payments.misconfigured',
        `USDC_ADDRESS has ${decimals} decimals, not ${USDC_DECIMALS}`,
      );
    }
  };

  return {
    chain,
    client,
    settings,
    rpc,
    ready() {
      checked ??= check().catch((err: unknown) => {
        checked = null;
        throw err;
      });
      return checked;
    },
  };
}

/** The hash of the canonical block at `number`, or null when the chain is shorter. */
export async function canonicalHash(chain: ChainClient, number: number): Promise<string | null> {
  try {
    const block = await chain.rpc((c) => c.getBlock({ blockNumber: BigInt(number) }));
    return block.hash?.toLowerCase() ?? null;
  } catch (err) {
    if (err instanceof BlockNotFoundError) return null;
    throw err;
  }
}

/** The RPC could not be reached or timed out (as opposed to answering with an error). */
export function isTransportError(err: unknown): boolean {
  return (
    err instanceof BaseError &&
    err.walk((e) => e instanceof HttpRequestError || e instanceof TimeoutError) !== null
  );
}
