import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/**
 * What an MCP server URL may reach: public addresses over https, after DNS resolution. Every
 * address a name resolves to is checked (one private answer among public ones refuses the
 * whole name) and the connection then goes to a checked address (fetch.ts pins it), so a
 * second, different DNS answer cannot slip in between check and connect.
 */

export class UrlRefused extends Error {
  override name = 'UrlRefused';
}

export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Resolves a host name to all its addresses (node's dns.lookup by default; tests inject). */
export type LookupAll = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemLookup: LookupAll = (hostname) =>
  dnsLookup(hostname, { all: true, verbatim: true });

export interface AddressPolicy {
  /** Loopback addresses allowed, over plain http too (MCP_ALLOW_HTTP_LOOPBACK). */
  allowLoopback: boolean;
}

const v4 = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (cloud metadata lives here)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  v4.addSubnet(net, bits, 'ipv4');
}

const v6 = new BlockList();
for (const [net, bits] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['::', 96], // IPv4-compatible (deprecated)
  ['::ffff:0:0', 96], // IPv4-mapped
  ['64:ff9b::', 96], // NAT64: reaches IPv4 addresses, private ones included
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard
  ['2001::', 32], // Teredo
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4: embeds an IPv4 address
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const) {
  v6.addSubnet(net, bits, 'ipv6');
}

export function isLoopback(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return address.startsWith('127.');
  return family === 6 && v6Loopback.check(address, 'ipv6');
}
const v6Loopback = new BlockList();
v6Loopback.addAddress('::1', 'ipv6');

/** Null when the address may be connected to, else why not (worded for an admin). */
export function addressProblem(address: string, policy: AddressPolicy): string | null {
  const family = isIP(address);
  if (family === 0) return 'is not an IP address';
  if (policy.allowLoopback && isLoopback(address)) return null;
  let blocked = true;
  try {
    blocked = family === 4 ? v4.check(address, 'ipv4') : v6.check(address, 'ipv6');
  } catch {
    // An address BlockList cannot read (a zone id) is refused, not waved through.
  }
  return blocked ? 'is a private, loopback, link-local or reserved address' : null;
}

/** The checks a URL's text allows before any resolution. */
export function urlProblem(url: URL, policy: AddressPolicy): string | null {
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must be an https:// URL';
  if (url.protocol === 'http:' && !policy.allowLoopback) return 'must be an https:// URL';
  if (url.username || url.password) return 'must not carry credentials (use headers)';
  if (!url.hostname) return 'has no host';
  return null;
}

function bareHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

/**
 * Checks the URL, resolves its host and checks every address; returns the address to
 * connect to. Throws UrlRefused (a policy refusal) or the resolver's error.
 */
export async function resolveTarget(
  url: URL,
  policy: AddressPolicy,
  lookup: LookupAll = systemLookup,
): Promise<ResolvedAddress> {
  const problem = urlProblem(url, policy);
  if (problem) throw new UrlRefused(`The URL ${problem}`);
  const host = bareHost(url);
  const literal = isIP(host);
  const addresses = literal ? [{ address: host, family: literal }] : await lookup(host);
  if (addresses.length === 0) throw new UrlRefused(`${host} has no address`);
  for (const { address } of addresses) {
    const why = addressProblem(address, policy);
    // The address itself stays out of the message: it would map internal names for a caller.
    if (why) throw new UrlRefused(`${host} resolves to an address that ${why}`);
  }
  if (url.protocol === 'http:' && !addresses.every((a) => isLoopback(a.address))) {
    throw new UrlRefused('Plain http is allowed to loopback addresses only');
  }
  return addresses[0] as ResolvedAddress;
}
