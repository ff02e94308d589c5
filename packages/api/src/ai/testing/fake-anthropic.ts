import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  closingEvents,
  errorBody,
  errorEvent,
  errorTypeFor,
  messageBody,
  openingEvents,
  type ReplyShape,
  type SseEvent,
  sse,
  textDelta,
} from './fake-anthropic-wire';

/**
 * A real HTTP server speaking the Anthropic Messages API (POST /v1/messages, JSON and SSE),
 * so tests drive the real SDK over a real socket: retries, stream parsing, connection cuts
 * and cancellation all happen for real. Each request takes the next scripted step; with
 * none left it gets the fallback reply.
 *
 *   const fake = await startFakeAnthropic();
 *   fake.script({ kind: 'error', status: 429, retryAfterMs: 5 }, { kind: 'reply', chunks: ['Hi'] });
 *   createAnthropicProvider({ apiKey: fake.apiKey, baseURL: fake.url, models });
 */

export const FAKE_ANTHROPIC_API_KEY = 'sk-ant-fake-test-key';

export type FakeStep =
  /** A complete reply: streamed as text deltas, or one JSON body for `stream: false`. */
  | {
      kind: 'reply';
      chunks?: string[] | undefined;
      /** Thinking deltas sent, as a thinking block, before the text. */
      thinking?: string[] | undefined;
      stopReason?: string | undefined;
      /** Defaults: about four characters per token of the prompt / the reply. */
      inputTokens?: number | undefined;
      outputTokens?: number | undefined;
      chunkDelayMs?: number | undefined;
    }
  /** An HTTP error with the API's error body; `retryAfterMs` sets the retry headers. */
  | {
      kind: 'error';
      status: number;
      type?: string | undefined;
      message?: string | undefined;
      retryAfterMs?: number | undefined;
      headers?: Record<string, string> | undefined;
    }
  /** Sends these text deltas, then destroys the socket ('destroy', default) or ends the
   *  response cleanly without message_stop ('end'). */
  | { kind: 'cut'; chunks: string[]; mode?: 'destroy' | 'end' | undefined }
  /** Sends these text deltas, then an SSE `error` event (default overloaded_error). */
  | { kind: 'stream-error'; chunks: string[]; type?: string | undefined }
  /** Sends the stream's opening and these deltas, then waits until the client goes away. */
  | { kind: 'hang'; chunks?: string[] | undefined };

export type FakeHandler = (req: RecordedRequest) => FakeStep;

export interface RecordedRequest {
  method: string;
  path: string;
  /** The key presented, by `x-api-key` or (as SDK 1.x sends it) `Authorization: Bearer`. */
  apiKey: string | undefined;
  authScheme: 'x-api-key' | 'bearer' | undefined;
  anthropicVersion: string | undefined;
  /** The SDK's `x-stainless-retry-count`: 0 for a first attempt. */
  retryCount: number | undefined;
  /** The parsed JSON body, as sent. */
  body: unknown;
  model: string | undefined;
  system: unknown;
  messages: unknown;
  max_tokens: number | undefined;
  stream: boolean;
  /** Settles when the response is done: `finished` false means the connection went away
   *  before the response was complete (client abort, or a scripted cut). */
  closed: Promise<{ finished: boolean; at: number }>;
}

export interface FakeAnthropic {
  /** Base URL for the SDK's `baseURL` (no trailing slash, no /v1). */
  readonly url: string;
  /** The only key the server accepts. */
  readonly apiKey: string;
  /** Every request received, in order, including rejected ones and SDK retries. */
  readonly requests: RecordedRequest[];
  /** Queues steps (or handlers that pick one per request) for the next requests. */
  script(...steps: Array<FakeStep | FakeHandler>): void;
  /** Scripted steps not consumed yet. */
  pending(): number;
  /** Forgets requests and queued steps, and restarts request ids at req_fake_1. */
  reset(): void;
  close(): Promise<void>;
}

export interface FakeAnthropicOptions {
  apiKey?: string | undefined;
  /** For requests with no scripted step; default a short fixed reply. */
  fallback?: FakeStep | FakeHandler | undefined;
}

const DEFAULT_FALLBACK: FakeStep = {
  kind: 'reply',
  chunks: ['Hello', ' from', ' fake', ' Claude.'],
};

export async function startFakeAnthropic(
  options: FakeAnthropicOptions = {},
): Promise<FakeAnthropic> {
  const apiKey = options.apiKey ?? FAKE_ANTHROPIC_API_KEY;
  const fallback = options.fallback ?? DEFAULT_FALLBACK;
  const requests: RecordedRequest[] = [];
  const queue: Array<FakeStep | FakeHandler> = [];
  let counter = 0;

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const n = ++counter;
    const requestId = `req_fake_${n}`;
    res.setHeader('request-id', requestId);
    const closed = new Promise<{ finished: boolean; at: number }>((resolve) => {
      res.on('close', () => resolve({ finished: res.writableFinished, at: Date.now() }));
    });
    const raw = await readBody(req);
    const body = parseJson(raw);
    const fields = isRecord(body) ? body : {};
    const record: RecordedRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      ...credentials(req),
      anthropicVersion: header(req, 'anthropic-version'),
      retryCount: numberOrUndefined(header(req, 'x-stainless-retry-count')),
      body,
      model: typeof fields.model === 'string' ? fields.model : undefined,
      system: fields.system,
      messages: fields.messages,
      max_tokens: typeof fields.max_tokens === 'number' ? fields.max_tokens : undefined,
      stream: fields.stream === true,
      closed,
    };
    requests.push(record);

    const rejection = validate(record, apiKey);
    if (rejection) {
      sendError(res, rejection.status, errorTypeFor(rejection.status), rejection.message);
      return;
    }
    const next = queue.shift() ?? fallback;
    const step = typeof next === 'function' ? next(record) : next;
    await perform(step, record, res, `msg_fake_${n}`);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    requests,
    script: (...steps) => {
      queue.push(...steps);
    },
    pending: () => queue.length,
    reset: () => {
      queue.length = 0;
      requests.length = 0;
      counter = 0;
    },
    close: async () => {
      // Hanging responses and the SDK's keep-alive sockets would hold close() open.
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) =>
        server.close((err) => (err ? reject(err) : resolve())),
      );
    },
  };
}

function validate(r: RecordedRequest, apiKey: string): { status: number; message: string } | null {
  if (r.method !== 'POST' || r.path.split('?')[0] !== '/v1/messages') {
    return { status: 404, message: `Not found: ${r.method} ${r.path}` };
  }
  if (r.apiKey !== apiKey) return { status: 401, message: 'invalid x-api-key' };
  if (!r.anthropicVersion || !/^\d{4}-\d{2}-\d{2}$/.test(r.anthropicVersion)) {
    return { status: 400, message: 'anthropic-version: header is required' };
  }
  if (!r.model) return { status: 400, message: 'model: Field required' };
  if (!(Number.isInteger(r.max_tokens) && (r.max_tokens ?? 0) >= 1)) {
    return { status: 400, message: 'max_tokens: must be a positive integer' };
  }
  if (!Array.isArray(r.messages) || r.messages.length === 0) {
    return { status: 400, message: 'messages: at least one message is required' };
  }
  return null;
}

async function perform(
  step: FakeStep,
  r: RecordedRequest,
  res: ServerResponse,
  id: string,
): Promise<void> {
  if (step.kind === 'error') {
    const headers: Record<string, string> = { ...step.headers };
    if (step.retryAfterMs !== undefined) {
      headers['retry-after-ms'] = String(step.retryAfterMs);
      headers['retry-after'] = String(Math.ceil(step.retryAfterMs / 1000));
    }
    const type = step.type ?? errorTypeFor(step.status);
    sendError(res, step.status, type, step.message ?? `fake ${type}`, headers);
    return;
  }
  const chunks = step.chunks ?? [];
  const reply = step.kind === 'reply' ? step : undefined;
  const shape: ReplyShape = {
    id,
    model: r.model ?? '',
    text: chunks,
    thinking: reply?.thinking ?? [],
    stopReason: reply?.stopReason ?? 'end_turn',
    inputTokens: reply?.inputTokens ?? approxTokens(promptText(r)),
    outputTokens: reply?.outputTokens ?? approxTokens(chunks.join('')),
  };
  if (!r.stream) {
    if (step.kind === 'reply') sendJson(res, 200, messageBody(shape));
    else if (step.kind === 'stream-error') {
      sendError(res, 529, step.type ?? 'overloaded_error', 'Overloaded');
    } else if (step.kind === 'cut') res.destroy();
    // 'hang': never answer.
    return;
  }

  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
  });
  const delayMs = reply?.chunkDelayMs ?? 0;
  await write(res, openingEvents(shape));
  for (const text of chunks) {
    if (delayMs > 0) await sleep(delayMs);
    await write(res, [textDelta(shape, text)]);
  }
  switch (step.kind) {
    case 'reply':
      await write(res, closingEvents(shape));
      res.end();
      return;
    case 'stream-error':
      await write(res, [errorEvent(step.type ?? 'overloaded_error', 'Overloaded')]);
      res.end();
      return;
    case 'cut':
      if (step.mode === 'end') {
        res.end();
        return;
      }
      // Give the client a moment to read what was sent: a fetch body that errors drops
      // chunks it had buffered but not yet handed out, which would blur what a test sees.
      await sleep(30);
      res.socket?.destroy();
      return;
    case 'hang':
      // Leave the response open; the client's abort (or close()) ends it.
      return;
  }
}

function write(res: ServerResponse, events: SseEvent[]): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed) return resolve();
    // Resolves even on error: a client that went away is a scenario, not a server failure.
    res.write(events.map(sse).join(''), () => resolve());
  });
}

function sendError(
  res: ServerResponse,
  status: number,
  type: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  const requestId = String(res.getHeader('request-id') ?? '');
  sendJson(res, status, errorBody(type, message, requestId), headers);
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function credentials(req: IncomingMessage): Pick<RecordedRequest, 'apiKey' | 'authScheme'> {
  const key = header(req, 'x-api-key');
  if (key !== undefined) return { apiKey: key, authScheme: 'x-api-key' };
  const bearer = /^Bearer (.+)$/i.exec(header(req, 'authorization') ?? '')?.[1];
  if (bearer !== undefined) return { apiKey: bearer, authScheme: 'bearer' };
  return { apiKey: undefined, authScheme: undefined };
}

function numberOrUndefined(v: string | undefined): number | undefined {
  const n = Number(v);
  return v === undefined || Number.isNaN(n) ? undefined : n;
}

function promptText(r: RecordedRequest): string {
  return JSON.stringify([r.system ?? '', r.messages ?? []]);
}

function approxTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}
