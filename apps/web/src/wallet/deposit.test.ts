import { describe, expect, test } from 'vitest';
import { confirmationsOf, depositUri, TX_HASH, usdcUnits } from './deposit';

describe('deposit helpers', () => {
  test('usdcUnits takes positive amounts with up to 6 decimals, exactly', () => {
    expect(usdcUnits('12.5')).toBe(12_500_000n);
    expect(usdcUnits(' 0.000001 ')).toBe(1n);
    expect(usdcUnits('1000000')).toBe(1_000_000_000_000n);
    for (const bad of ['', '0', '0.000000', '1.2345678', '-1', '1e3', '12.5.0', '.5', 'abc']) {
      expect(usdcUnits(bad)).toBeNull();
    }
  });

  test('depositUri is an EIP-681 transfer request with an amount, the address without', () => {
    const base = {
      chainId: 5042002,
      usdc: '0x3600000000000000000000000000000000000000',
      depositAddress: '0x00000000000000000000000000000000000000aa',
    };
    expect(depositUri({ ...base, units: null })).toBe(base.depositAddress);
    expect(depositUri({ ...base, units: 2_250_000n })).toBe(
      'ethereum:0x3600000000000000000000000000000000000000@5042002/transfer' +
        '?address=0x00000000000000000000000000000000000000aa&uint256=2250000',
    );
  });

  test('a block counts as its own first confirmation', () => {
    expect(confirmationsOf(10, 10)).toBe(1);
    expect(confirmationsOf(10, 12)).toBe(3);
    expect(confirmationsOf(10, 9)).toBe(0);
  });

  test('TX_HASH accepts 32-byte hashes only', () => {
    expect(TX_HASH.test(`0x${'ab'.repeat(32)}`)).toBe(true);
    expect(TX_HASH.test(`0x${'ab'.repeat(31)}`)).toBe(false);
    expect(TX_HASH.test('ab'.repeat(33))).toBe(false);
  });
});
