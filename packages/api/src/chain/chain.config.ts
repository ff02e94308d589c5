import { type Address, getAddress, isAddress, zeroAddress } from 'viem';
import { z } from 'zod';
import { httpUrl, int, setting } from '../lib/settings';

// Arc testnet (viem's `arcTestnet`) and its USDC ERC-20 interface (6 decimals).
export const ARC_TESTNET_CHAIN_ID = 5042002;
const ARC_TESTNET_USDC = '0x3600000000000000000000000000000000000000';

// Mixed case must carry a valid EIP-55 checksum; stored and compared checksummed.
const evmAddress = z
  .string()
  .trim()
  .refine(
    (v) => isAddress(v),
    'must be a 0x-prefixed 20-byte address (valid checksum if mixed-case)',
  )
  .transform((v): Address => getAddress(v));

/** USDC deposits on an EVM chain (Arc testnet by default). */
export const chainConfig = {
  chain: {
    id: setting({
      env: 'CHAIN_ID',
      schema: int(1, Number.MAX_SAFE_INTEGER),
      default: String(ARC_TESTNET_CHAIN_ID),
      doc: 'EVM chain of USDC deposits',
    }),
    rpcUrl: setting({
      env: 'CHAIN_RPC_URL',
      schema: httpUrl().optional(),
      doc: "JSON-RPC over http(s); unset: the chain's public RPC (known for Arc testnet only)",
    }),
    usdcAddress: setting({
      env: 'USDC_ADDRESS',
      schema: evmAddress,
      default: ARC_TESTNET_USDC,
      doc: 'USDC ERC-20 contract; must have 6 decimals',
    }),
    depositAddress: setting({
      env: 'DEPOSIT_ADDRESS',
      schema: evmAddress
        .refine((a) => a !== zeroAddress, 'must not be the zero address')
        .optional(),
      doc: 'treasury receiving deposits; unset: deposits are refused and no watcher runs',
    }),
    confirmations: setting({
      env: 'CHAIN_CONFIRMATIONS',
      schema: int(1, 10_000),
      default: '3',
      doc: 'blocks (the deposit itself included) before a deposit is credited',
    }),
    watchIntervalMs: setting({
      env: 'PAYMENTS_WATCH_INTERVAL_MS',
      schema: int(500, 3_600_000),
      default: '15000',
      doc: 'how often the deposit watcher scans the chain',
    }),
  },
};
