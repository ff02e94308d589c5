import { describe, expect, it } from 'vitest';
import { guardedFetch } from './fetch';
import { addressProblem, type LookupAll, resolveTarget, UrlRefused } from './ssrf';
import { startTestMcpServer } from './testing';

const strict = { allowLoopback: false };
const loopbackAllowed = { allowLoopback: true };

describe('addresses', () => {
  it.each([
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '127.0.0.1',
    '127.8.9.10',
    '0.0.0.0',
    '169.254.169.254',
    '100.64.0.1',
    '100.127.255.254',
    '224.0.0.1',
    '239.255.255.250',
    '255.255.255.255',
    '198.18.0.1',
    '::',
    '::1',
    'fc00::1',
    'fd12:3456::1',
    'fe80::1',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:10.0.0.1',
    '::ffff:7f00:1',
    '::ffff:8.8.8.8',
    '64:ff9b::a00:1',
    '2002:a00:1::1',
  ])('%s is refused', (address) => {
    expect(addressProblem(address, strict)).toMatch(/private|reserved/);
  });

  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700::1111', '2a00:1450::1'])(
    '%s is public',
    (address) => {
      expect(addressProblem(address, strict)).toBeNull();
    },
  );

  it('loopback only when allowed; other private ranges never', () => {
    expect(addressProblem('127.0.0.1', loopbackAllowed)).toBeNull();
    expect(addressProblem('::1', loopbackAllowed)).toBeNull();
    expect(addressProblem('10.0.0.1', loopbackAllowed)).not.toBeNull();
    expect(addressProblem('169.254.169.254', loopbackAllowed)).not.toBeNull();
    expect(addressProblem('::ffff:127.0.0.1', loopbackAllowed)).not.toBeNull();
  });
});

/** A resolver that answers from a table (and counts its calls). */
function fakeDns(table: Record<string, string[]>) {
  const calls: string[] = [];
  const lookup: LookupAll = async (host) => {
    calls.push(host);
    return (table[host] ?? []).map((address) => ({
      address,
      family: address.includes(':') ? 6 : 4,
    }));
  };
  return { lookup, calls };
}

describe('URLs, after resolution', () => {
  const dns = fakeDns({
    'internal.example.com': ['10.0.0.7'],
    'mixed.example.com': ['93.184.216.34', '192.168.0.10'],
    'public.example.com': ['93.184.216.34'],
    'v6.example.com': ['fd00::5'],
  });
  const refused = (url: string, policy = strict) =>
    expect(resolveTarget(new URL(url), policy, dns.lookup)).rejects.toBeInstanceOf(UrlRefused);

  it('a name resolving to 10.x, to a ULA, or to one private address among public ones', async () => {
    await refused('https://internal.example.com/mcp');
    await refused('https://v6.example.com/mcp');
    await refused('https://mixed.example.com/mcp');
    await expect(
      resolveTarget(new URL('https://internal.example.com/mcp'), strict, dns.lookup),
    ).rejects.toThrow('resolves to an address that is a private');
  });

  it('a public name resolves to its checked address', async () => {
    expect(
      await resolveTarget(new URL('https://public.example.com/mcp'), strict, dns.lookup),
    ).toEqual({ address: '93.184.216.34', family: 4 });
  });

  it('IP literals and localhost, in any spelling', async () => {
    await refused('https://127.0.0.1/mcp');
    await refused('https://2130706433/mcp'); // 127.0.0.1 as one number
    await refused('https://0x7f.1/mcp');
    await refused('https://[::1]/mcp');
    await refused('https://[::ffff:169.254.169.254]/mcp');
    await refused('https://169.254.169.254/latest/meta-data');
    // The system resolver: localhost is loopback.
    await expect(resolveTarget(new URL('https://localhost/mcp'), strict)).rejects.toBeInstanceOf(
      UrlRefused,
    );
  });

  it('http only to loopback, and only when allowed; no credentials in URLs; no other schemes', async () => {
    await refused('http://public.example.com/mcp');
    await refused('http://public.example.com/mcp', loopbackAllowed);
    await refused('http://127.0.0.1:9/mcp');
    await refused('ftp://public.example.com/mcp', loopbackAllowed);
    await refused('https://user:pw@public.example.com/mcp');
    expect(await resolveTarget(new URL('http://localhost:9/mcp'), loopbackAllowed)).toMatchObject({
      address: expect.stringMatching(/^(127\.|::1$)/),
    });
  });

  it('the guarded fetch connects to the checked address, never resolving twice', async () => {
    const server = await startTestMcpServer();
    try {
      const port = new URL(server.url).port;
      const { lookup, calls } = fakeDns({ 'tools.test': ['127.0.0.1'] });
      const fetch = guardedFetch({
        ...loopbackAllowed,
        connectTimeoutMs: 2000,
        responseTimeoutMs: 2000,
        maxResponseBytes: 4096,
        lookup,
      });
      // Reaches the loopback server under a name only the injected resolver knows.
      const res = await fetch(`http://tools.test:${port}/mcp`, { method: 'GET' });
      expect(res.status).toBe(404);
      expect(calls).toEqual(['tools.test']);
      // The same name pointing somewhere private is refused before any connection.
      const rebound = guardedFetch({
        ...loopbackAllowed,
        connectTimeoutMs: 2000,
        responseTimeoutMs: 2000,
        maxResponseBytes: 4096,
        lookup: fakeDns({ 'tools.test': ['10.0.0.1'] }).lookup,
      });
      const before = server.received.length;
      await expect(rebound(`http://tools.test:${port}/mcp`)).rejects.toBeInstanceOf(UrlRefused);
      expect(server.received.length).toBe(before);
    } finally {
      await server.close();
    }
  });

  it('redirects are refused, and a response past the cap fails', async () => {
    const server = await startTestMcpServer();
    try {
      const fetch = guardedFetch({
        ...loopbackAllowed,
        connectTimeoutMs: 2000,
        responseTimeoutMs: 2000,
        maxResponseBytes: 16,
      });
      server.redirectTo = 'http://169.254.169.254/latest/meta-data';
      await expect(fetch(server.url, { method: 'GET' })).rejects.toThrow('redirects are refused');
      server.redirectTo = null;
      const res = await fetch(server.url, { method: 'POST', body: 'x'.repeat(100) });
      // The server's error body is longer than 16 bytes.
      await expect(res.text()).rejects.toThrow();
    } finally {
      await server.close();
    }
  });

  it('a server that accepts the connection but never answers times out', async () => {
    const net = await import('node:net');
    const silent = net.createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as import('node:net').AddressInfo;
    try {
      const fetch = guardedFetch({
        ...loopbackAllowed,
        connectTimeoutMs: 2000,
        responseTimeoutMs: 300,
        maxResponseBytes: 4096,
      });
      const started = Date.now();
      await expect(fetch(`http://127.0.0.1:${port}/mcp`, { method: 'GET' })).rejects.toThrow(
        'no answer within 300 ms',
      );
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      silent.close();
    }
  });
});
