import { type Address, getAddress, type Hex, isAddress } from 'viem';
import {
  createSiweMessage,
  generateSiweNonce,
  parseSiweMessage,
  type SiweMessage,
} from 'viem/siwe';
import type { ChainClient } from '../../chain/chain';
import { AppError } from '../../lib/errors';

/** How long a challenge may be answered. */
export const CHALLENGE_TTL_MS = 10 * 60_000;
const STATEMENT = 'Link this wallet to your SmartSpace account to pay with USDC.';

/** Where the SIWE message says it comes from: the web app (PUBLIC_APP_URL). */
export interface SiweOrigin {
  domain: string;
  uri: string;
}

export function siweOrigin(publicAppUrl: string): SiweOrigin {
  const url = new URL(publicAppUrl);
  return { domain: url.host, uri: url.origin };
}

export interface Challenge {
  nonce: string;
  address: Address;
  issuedAt: Date;
  expiresAt: Date;
  message: string;
}

export function buildChallenge(opts: {
  origin: SiweOrigin;
  chainId: number;
  address: Address;
  now?: Date;
}): Challenge {
  const issuedAt = opts.now ?? new Date();
  const expiresAt = new Date(issuedAt.getTime() + CHALLENGE_TTL_MS);
  const nonce = generateSiweNonce();
  const message = createSiweMessage({
    domain: opts.origin.domain,
    uri: opts.origin.uri,
    address: opts.address,
    chainId: opts.chainId,
    nonce,
    statement: STATEMENT,
    version: '1',
    issuedAt,
    expirationTime: expiresAt,
  });
  return { nonce, address: opts.address, issuedAt, expiresAt, message };
}

export interface ParsedSiwe {
  address: Address;
  nonce: string;
  chainId: number;
  expirationTime: Date;
}

/**
 * Parses a signed message and checks what does not need the database: it is a SIWE
 * message (EIP-4361) for this app's domain and URI, on the configured chain, with the
 * fields a challenge always has.
 */
export function checkSiweMessage(opts: {
  message: string;
  origin: SiweOrigin;
  chainId: number;
}): ParsedSiwe {
  const invalid = (why: string) => new AppError('wallets.message_invalid', why);
  let m: Partial<SiweMessage>;
  try {
    m = parseSiweMessage(opts.message);
  } catch {
    throw invalid('Not a SIWE (EIP-4361) message');
  }
  if (!m.address || !isAddress(m.address, { strict: false }) || !m.nonce || !m.domain) {
    throw invalid('Not a SIWE (EIP-4361) message');
  }
  if (m.version !== '1' || !m.expirationTime || Number.isNaN(m.expirationTime.getTime())) {
    throw invalid('The message lacks the version or expiration of a challenge');
  }
  if (m.domain !== opts.origin.domain || m.uri !== opts.origin.uri) {
    throw new AppError(
      'wallets.domain_mismatch',
      `The message is for ${m.domain}, not ${opts.origin.domain}`,
    );
  }
  if (m.chainId !== opts.chainId) {
    throw new AppError('wallets.chain_mismatch', `The message is not for chain ${opts.chainId}`);
  }
  return {
    address: getAddress(m.address),
    nonce: m.nonce,
    chainId: m.chainId,
    expirationTime: m.expirationTime,
  };
}

/**
 * Verifies the signature with viem: ECDSA for plain accounts, ERC-1271 for deployed
 * smart-contract wallets and ERC-6492 for counterfactual ones (those need the RPC).
 */
export async function verifySiweSignature(opts: {
  chain: ChainClient;
  message: string;
  signature: Hex;
  parsed: ParsedSiwe;
  origin: SiweOrigin;
}): Promise<void> {
  const valid = await opts.chain.rpc((c) =>
    c.verifySiweMessage({
      message: opts.message,
      signature: opts.signature,
      address: opts.parsed.address,
      domain: opts.origin.domain,
      nonce: opts.parsed.nonce,
    }),
  );
  if (!valid) {
    throw new AppError('wallets.signature_invalid', 'The signature does not match the address');
  }
}
