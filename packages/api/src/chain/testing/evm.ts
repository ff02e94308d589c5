import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import ganache from 'ganache';
import solc from 'solc';
import {
  type Abi,
  type Address,
  type Chain,
  createPublicClient,
  createWalletClient,
  defineChain,
  getAddress,
  type Hash,
  type Hex,
  http,
  type PrivateKeyAccount,
} from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';

/**
 * A real EVM on loopback for tests: ganache in this process behind a plain JSON-RPC HTTP
 * server, so the code under test talks to it through viem's ordinary http transport.
 */

interface Artifact {
  abi: Abi;
  bytecode: Hex;
}

let compiled: Record<string, Artifact> | null = null;

/** Compiles contracts.sol once per process (solc-js, no download). */
export function artifacts(): Record<string, Artifact> {
  if (compiled) return compiled;
  const source = readFileSync(new URL('./contracts.sol', import.meta.url), 'utf8');
  const out = JSON.parse(
    solc.compile(
      JSON.stringify({
        language: 'Solidity',
        sources: { 'contracts.sol': { content: source } },
        settings: {
          // ganache 7 runs up to shanghai; paris bytecode runs everywhere.
          evmVersion: 'paris',
          outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
        },
      }),
    ),
  ) as {
    errors?: { severity: string; formattedMessage: string }[];
    contracts: Record<string, Record<string, { abi: Abi; evm: { bytecode: { object: string } } }>>;
  };
  const errors = (out.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length) throw new Error(errors.map((e) => e.formattedMessage).join('\n'));
  compiled = {};
  for (const [name, c] of Object.entries(out.contracts['contracts.sol'] ?? {})) {
    compiled[name] = { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` };
  }
  return compiled;
}

function artifact(name: string): Artifact {
  const a = artifacts()[name];
  if (!a) throw new Error(`no contract ${name}`);
  return a;
}

export interface TestEvm {
  url: string;
  chain: Chain;
  /** Funded accounts (10,000 of the native coin each). */
  accounts: PrivateKeyAccount[];
  client: ReturnType<typeof publicClientFor>;
  request(method: string, params?: unknown[]): Promise<unknown>;
  /** Mines `blocks` empty blocks; `timestamp` makes the first one differ from a sibling. */
  mine(blocks?: number, timestamp?: number): Promise<void>;
  snapshot(): Promise<string>;
  revert(id: string): Promise<void>;
  deploy(from: PrivateKeyAccount, contract: string, args: unknown[]): Promise<Address>;
  /** Sends a contract call and returns the mined transaction's hash (reverts included). */
  write(opts: {
    from: PrivateKeyAccount;
    to: Address;
    contract: string;
    functionName: string;
    args: unknown[];
    /** Set to skip gas estimation, which refuses calls that would revert. */
    gas?: bigint;
  }): Promise<Hash>;
  close(): Promise<void>;
}

function publicClientFor(chain: Chain, url: string) {
  return createPublicClient({ chain, transport: http(url), pollingInterval: 50 });
}

export async function startTestEvm(opts: { chainId: number; accounts?: number }): Promise<TestEvm> {
  const keys = Array.from({ length: opts.accounts ?? 6 }, () => generatePrivateKey());
  const provider = ganache.provider({
    chain: { chainId: opts.chainId },
    wallet: { accounts: keys.map((secretKey) => ({ secretKey, balance: 10n ** 22n })) },
    logging: { quiet: true },
  });
  const request = (method: string, params: unknown[] = []) =>
    provider.request({ method, params } as never) as Promise<unknown>;

  const server: Server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const answer = async (call: { id: unknown; method: string; params?: unknown[] }) => {
      try {
        return {
          jsonrpc: '2.0',
          id: call.id,
          result: (await request(call.method, call.params)) ?? null,
        };
      } catch (e) {
        const err = e as { code?: number; message: string; data?: unknown };
        return {
          jsonrpc: '2.0',
          id: call.id,
          error: { code: err.code ?? -32000, message: err.message, data: err.data },
        };
      }
    };
    const payload = JSON.parse(body);
    const out = Array.isArray(payload)
      ? await Promise.all(payload.map(answer))
      : await answer(payload);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const chain = defineChain({
    id: opts.chainId,
    name: 'Local EVM',
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [url] } },
  });
  const client = publicClientFor(chain, url);
  const accounts = keys.map((k) => privateKeyToAccount(k));
  const walletFor = (account: PrivateKeyAccount) =>
    createWalletClient({ account, chain, transport: http(url) });

  return {
    url,
    chain,
    accounts,
    client,
    request,
    async mine(blocks = 1, timestamp) {
      for (let i = 0; i < blocks; i++) {
        await request('evm_mine', i === 0 && timestamp !== undefined ? [{ timestamp }] : []);
      }
    },
    snapshot: () => request('evm_snapshot') as Promise<string>,
    async revert(id) {
      if ((await request('evm_revert', [id])) !== true) throw new Error('evm_revert failed');
    },
    async deploy(from, contract, args) {
      const { abi, bytecode } = artifact(contract);
      const hash = await walletFor(from).deployContract({ abi, bytecode, args });
      const receipt = await client.getTransactionReceipt({ hash });
      if (!receipt.contractAddress) throw new Error('deployment failed');
      return getAddress(receipt.contractAddress);
    },
    async write({ from, to, contract, functionName, args, gas }) {
      const { abi } = artifact(contract);
      const hash = await walletFor(from).writeContract({
        address: to,
        abi,
        functionName,
        args,
        ...(gas ? { gas } : {}),
      } as never);
      // ganache mines each transaction as it arrives.
      await client.getTransactionReceipt({ hash });
      return hash;
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await provider.disconnect();
    },
  };
}
