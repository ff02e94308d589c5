import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { type AddressPolicy, type LookupAll, type ResolvedAddress, resolveTarget } from './ssrf';

/**
 * The only way this server talks to MCP servers: a fetch for the SDK's transport over
 * node:http(s) that resolves and checks the host (ssrf.ts), connects to the checked address,
 * refuses redirects, times out connecting and waiting for an answer, and stops reading a
 * response past a size cap.
 */

export interface FetchLimits extends AddressPolicy {
  connectTimeoutMs: number;
  /** From sending the request to the response's headers. */
  responseTimeoutMs: number;
  maxResponseBytes: number;
  lookup?: LookupAll | undefined;
}

/** A failure of the exchange itself (not an MCP error answer). */
export class McpTransportError extends Error {
  override name = 'McpTransportError';
}

/** Always answers with the address already checked: no second resolution to race. */
function pinned(target: ResolvedAddress): LookupFunction {
  return (_hostname, options, callback) => {
    if ((options as { all?: boolean }).all) {
      (callback as unknown as (e: null, a: ResolvedAddress[]) => void)(null, [target]);
    } else callback(null, target.address, target.family);
  };
}

function requestHeaders(init: RequestInit | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  new Headers(init?.headers).forEach((value, name) => {
    out[name] = value;
  });
  return out;
}

function requestBody(init: RequestInit | undefined): string | undefined {
  const body = init?.body;
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return body;
  throw new McpTransportError('unsupported request body');
}

function responseHeaders(res: http.IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  return headers;
}

/**
 * The response body as a web stream that fails once it passes `max` bytes. No backpressure:
 * the cap bounds what can pile up.
 */
function cappedBody(
  res: http.IncomingMessage,
  max: number,
  onOversize: ((err: Error) => void) | undefined,
): ReadableStream<Uint8Array> {
  let seen = 0;
  let done = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      const end = (err?: Error) => {
        if (done) return;
        done = true;
        if (err) controller.error(err);
        else controller.close();
      };
      res.on('data', (chunk: Buffer) => {
        if (done) return;
        seen += chunk.length;
        if (seen > max) {
          const err = new McpTransportError(`the response is larger than ${max} bytes`);
          end(err);
          res.destroy();
          onOversize?.(err);
          return;
        }
        controller.enqueue(new Uint8Array(chunk));
      });
      res.on('end', () => end());
      res.on('error', (err) => end(err));
      res.on('close', () => end(new McpTransportError('the connection closed mid-response')));
    },
    cancel() {
      done = true;
      res.destroy();
    },
  });
}

/**
 * `onOversize` hears of a response cut at the cap: the SDK reads a failed event stream as a
 * disconnection and would wait for the answer until its timeout, so the caller aborts instead.
 */
export function guardedFetch(limits: FetchLimits, onOversize?: (err: Error) => void) {
  return async (input: string | URL, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input));
    const target = await resolveTarget(url, limits, limits.lookup);
    return send(url, target, init, limits, onOversize);
  };
}

function send(
  url: URL,
  target: ResolvedAddress,
  init: RequestInit | undefined,
  limits: FetchLimits,
  onOversize: ((err: Error) => void) | undefined,
): Promise<Response> {
  const signal = init?.signal ?? undefined;
  signal?.throwIfAborted();
  const body = requestBody(init);
  return new Promise<Response>((resolve, reject) => {
    const transport = url.protocol === 'https:' ? https : http;
    const req = transport.request(url, {
      method: init?.method ?? 'GET',
      headers: requestHeaders(init),
      lookup: pinned(target),
      // A socket of its own: a pooled one may have been opened for an earlier answer.
      agent: false,
    });
    const fail = (err: Error) => req.destroy(err);
    const connectTimer = setTimeout(
      () => fail(new McpTransportError(`connecting timed out after ${limits.connectTimeoutMs} ms`)),
      limits.connectTimeoutMs,
    );
    const responseTimer = setTimeout(
      () => fail(new McpTransportError(`no answer within ${limits.responseTimeoutMs} ms`)),
      limits.responseTimeoutMs,
    );
    const onAbort = () =>
      fail(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    const settle = () => {
      clearTimeout(connectTimer);
      clearTimeout(responseTimer);
    };
    req.on('socket', (socket) => {
      if (!socket.connecting) clearTimeout(connectTimer);
      else socket.once('connect', () => clearTimeout(connectTimer));
    });
    req.on('error', (err) => {
      settle();
      signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    req.on('close', () => signal?.removeEventListener('abort', onAbort));
    req.on('response', (res) => {
      settle();
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400) {
        res.destroy();
        reject(
          new McpTransportError(
            `the server answered with a redirect (${status}); redirects are refused`,
          ),
        );
        return;
      }
      // After the headers, the abort signal (the SDK closing, a run cancelled) ends the body.
      signal?.addEventListener('abort', () => res.destroy(), { once: true });
      const noBody = status === 204 || status === 205 || status === 304;
      if (noBody) res.resume();
      resolve(
        new Response(noBody ? null : cappedBody(res, limits.maxResponseBytes, onOversize), {
          status,
          statusText: res.statusMessage ?? '',
          headers: responseHeaders(res),
        }),
      );
    });
    req.end(body);
  });
}
