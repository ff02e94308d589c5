import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './harness';

/**
 * Slow clients and oversized URLs: a request must be
 * received within REQUEST_TIMEOUT_MS, headers and body alike, and refusals under /trpc come in
 * the tRPC envelope without echoing what was sent.
 */
const TIMEOUT_MS = 1_000;
/** Allowed overshoot past the timeout (the server checks connections periodically). */
const SLACK_MS = 700;

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ REQUEST_TIMEOUT_MS: String(TIMEOUT_MS) });
});
afterAll(() => server.close());

interface Cut {
  /** From the first byte sent until the server closed the connection. */
  ms: number;
  /** What the server sent back, if anything. */
  response: string;
}

/**
 * Opens a raw connection, writes `chunks` one every `everyMs` (looping over the last one
 * forever), and resolves when the server closes the connection.
 */
function trickle(chunks: string[], everyMs: number): Promise<Cut> {
  const address = new URL(server.origin);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(address.port), address.hostname);
    let response = '';
    let started = 0;
    let timer: NodeJS.Timeout | undefined;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      response += d;
    });
    socket.on('error', () => {});
    const giveUp = setTimeout(() => {
      socket.destroy();
      reject(new Error('the server never cut the connection'));
    }, 20_000);
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve({ ms: performance.now() - started, response });
    });
    socket.on('connect', () => {
      started = performance.now();
      let i = 0;
      const next = () => {
        if (socket.destroyed) return;
        socket.write(chunks[Math.min(i, chunks.length - 1)] ?? '');
        i += 1;
      };
      next();
      timer = setInterval(next, everyMs);
    });
  });
}

describe('slow requests are cut at REQUEST_TIMEOUT_MS', () => {
  it('headers sent slowly: 408 within the timeout', async () => {
    const cut = await trickle(['GET /health HTTP/1.1\r\n', 'x-slow: 1\r\n'], 100);
    expect(cut.response).toMatch(/^HTTP\/1\.1 408/);
    expect(cut.ms).toBeGreaterThan(TIMEOUT_MS - 100);
    expect(cut.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
  });

  it('a body sent slowly: cut within the timeout', async () => {
    const head =
      'POST /trpc/auth.login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n';
    const cut = await trickle([head, ' '], 100);
    expect(cut.response).toMatch(/^HTTP\/1\.1 408/);
    expect(cut.ms).toBeGreaterThan(TIMEOUT_MS - 100);
    expect(cut.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
  });

  it('a connection that sends half a request line, or nothing at all: cut too', async () => {
    for (const first of ['GET /hea', '']) {
      const cut = await trickle([first, ''], 100);
      expect(cut.response).toMatch(/^HTTP\/1\.1 408/);
      expect(cut.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    }
  });

  it('a request sent at a normal pace is served', async () => {
    const res = await fetch(`${server.origin}/health`);
    expect(res.status).toBe(200);
  });
});

describe('URLs too long for the router', () => {
  it('a batch path over the length cap: 414 in the tRPC envelope, the path not echoed', async () => {
    const long = Array.from({ length: 1001 }, () => 'users.me').join(',');
    const res = await fetch(`${server.origin}/trpc/${long}?batch=1&input={}`);
    const text = await res.text();
    expect(res.status).toBe(414);
    expect(JSON.parse(text)).toEqual({
      error: {
        message: 'Request URL too long',
        code: -32600,
        data: { code: 'BAD_REQUEST', httpStatus: 414, appCode: 'request.url_too_long' },
      },
    });
    expect(text).not.toContain('users.me');
  });

  it('an undecodable path segment: 400 in the tRPC envelope, not echoed', async () => {
    const res = await fetch(`${server.origin}/trpc/%E0%A4%A`);
    const text = await res.text();
    expect(res.status).toBe(400);
    expect(JSON.parse(text).error.data).toMatchObject({ code: 'BAD_REQUEST', httpStatus: 400 });
    expect(text).not.toContain('%E0');
  });

  it('outside /trpc: the plain error shape, not echoed', async () => {
    const res = await fetch(`${server.origin}/files/${'f'.repeat(5000)}`);
    const text = await res.text();
    expect(res.status).toBe(414);
    expect(JSON.parse(text)).toEqual({ error: 'Request URL too long', statusCode: 414 });
  });
  it('an unknown route: 404 in the shape of its prefix, the path not echoed', async () => {
    const plain = await fetch(`${server.origin}/no-such-page-xyz`);
    const plainText = await plain.text();
    expect(plain.status).toBe(404);
    expect(JSON.parse(plainText)).toEqual({ error: 'Not found', statusCode: 404 });
    const rpc = await fetch(`${server.origin}/trpc/a/b-xyz`);
    const rpcText = await rpc.text();
    expect(rpc.status).toBe(404);
    expect(JSON.parse(rpcText).error.data).toMatchObject({ code: 'NOT_FOUND', httpStatus: 404 });
    expect(plainText + rpcText).not.toContain('xyz');
  });
});
