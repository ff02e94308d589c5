import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy between a client and a real server (PostgreSQL in the outage tests), so a test
 * can take the server away and give it back while the client keeps running:
 * - `down()`: open connections are cut and new ones refused (ECONNREFUSED), as when the
 *   server stops;
 * - `blackhole()`: nothing is forwarded any more and new connections are accepted but never
 *   answered, as when the host freezes or the network drops packets;
 * - `up()`: forwarding resumes (held bytes included); connections accepted by the black hole
 *   are cut, as a peer that comes back resets them.
 */
export interface TcpProxy {
  /** `host:port` clients connect to. */
  readonly port: number;
  down(): Promise<void>;
  blackhole(): void;
  up(): Promise<void>;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket | null;
  /** Bytes held back while black-holed, per direction. */
  held: { toUpstream: Buffer[]; toClient: Buffer[] };
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let mode: 'up' | 'down' | 'blackhole' = 'up';

  const forward = (pair: Pair, chunk: Buffer, toUpstream: boolean) => {
    const dest = toUpstream ? pair.upstream : pair.client;
    if (mode === 'blackhole' || !dest) {
      (toUpstream ? pair.held.toUpstream : pair.held.toClient).push(chunk);
      return;
    }
    dest.write(chunk);
  };

  const cut = (pair: Pair) => {
    pair.client.destroy();
    pair.upstream?.destroy();
    pairs.delete(pair);
  };

  const onConnection = (client: Socket) => {
    const pair: Pair = { client, upstream: null, held: { toUpstream: [], toClient: [] } };
    pairs.add(pair);
    client.on('data', (chunk: Buffer) => forward(pair, chunk, true));
    client.on('error', () => cut(pair));
    client.on('close', () => cut(pair));
    // A black hole accepts and never answers: no upstream until it is cut by up().
    if (mode === 'blackhole') return;
    const upstream = netConnect(target.port, target.host);
    pair.upstream = upstream;
    upstream.on('connect', () => {
      if (mode === 'up') flush(pair);
    });
    upstream.on('data', (chunk: Buffer) => forward(pair, chunk, false));
    upstream.on('error', () => cut(pair));
    upstream.on('close', () => cut(pair));
  };

  const flush = (pair: Pair) => {
    const { toUpstream, toClient } = pair.held;
    pair.held = { toUpstream: [], toClient: [] };
    for (const chunk of toUpstream) pair.upstream?.write(chunk);
    for (const chunk of toClient) pair.client.write(chunk);
  };

  let server: Server | null = null;
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const srv = createServer(onConnection);
      server = srv;
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => {
        const address = srv.address();
        resolve(typeof address === 'object' && address ? address.port : port);
      });
    });
  const stopListening = () =>
    new Promise<void>((resolve) => {
      if (!server?.listening) return resolve();
      server.close(() => resolve());
    });

  const port = await listen(0);
  return {
    port,
    async down() {
      mode = 'down';
      for (const pair of [...pairs]) cut(pair);
      await stopListening();
    },
    blackhole() {
      mode = 'blackhole';
    },
    async up() {
      const wasDown = mode === 'down';
      mode = 'up';
      for (const pair of [...pairs]) {
        if (pair.upstream) flush(pair);
        else cut(pair);
      }
      if (wasDown) await listen(port);
    },
    async close() {
      mode = 'down';
      for (const pair of [...pairs]) cut(pair);
      await stopListening();
    },
  };
}

/** A proxy in front of the PostgreSQL server at `url`, and the same URL through the proxy. */
export async function proxyDatabaseUrl(url: string): Promise<{ proxy: TcpProxy; url: string }> {
  const real = new URL(url);
  const proxy = await startTcpProxy({ host: real.hostname, port: Number(real.port || 5432) });
  const proxied = new URL(real);
  proxied.host = `127.0.0.1:${proxy.port}`;
  return { proxy, url: proxied.toString() };
}
