import { arcTestnet as viemArcTestnet } from 'viem/chains';
import { describe, expect, it } from 'vitest';
import { arcTestnet, resolveChain } from './chain';
import { ARC_TESTNET_CHAIN_ID } from './chain.config';

describe('Arc testnet', () => {
  it('is defined as viem defines it (kept here so start-up does not load every viem chain)', () => {
    expect(JSON.parse(JSON.stringify(arcTestnet))).toEqual(
      JSON.parse(JSON.stringify(viemArcTestnet)),
    );
    expect(arcTestnet.id).toBe(ARC_TESTNET_CHAIN_ID);
  });

  it('is the default chain, with CHAIN_RPC_URL replacing its RPC', () => {
    expect(resolveChain({ id: ARC_TESTNET_CHAIN_ID } as Parameters<typeof resolveChain>[0])).toBe(
      arcTestnet,
    );
    const custom = resolveChain({
      id: ARC_TESTNET_CHAIN_ID,
      rpcUrl: 'http://127.0.0.1:8545',
    } as Parameters<typeof resolveChain>[0]);
    expect(custom.rpcUrls.default.http).toEqual(['http://127.0.0.1:8545']);
    expect(custom.name).toBe('Arc Testnet');
  });
});
