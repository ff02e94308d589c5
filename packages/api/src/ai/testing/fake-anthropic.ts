import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { perform, sendError, sendTokenCount } from './fake-anthropic-respond';
import { COUNT_TOKENS_PATH, validate } from './fake-anthropic-validate';
import { errorTypeFor } from './fake-anthropic-wire';

/**
 * A real HTTP server speaking the Anthropic Messages API (POST /v1/messages, JSON and SSE;
 * POST /v1/messages/count_tokens),
 * so tests drive the real SDK over a real socket: retries, stream parsing, connection cuts
 * and cancellation all happen for real. Each request takes the next scripted step; with
 * none left it gets the fallback reply. Requests are checked as the real API checks them
 * (see fake-anthropic-validate.ts), tool_use/tool_result pairing included.
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
      /** Prompt-cache counts reported beside inputTokens (which excludes them, as the API's). */
      cacheWriteTokens?: number | undefined;
      cacheReadTokens?: number | undefined;
      /** Reported as the matched stop sequence (with stopReason 'stop_sequence'). */
      stopSequence?: string | undefined;
      /** Defaults: about four characters per token of the prompt / the reply. */
      inputTokens?: number | undefined;
      outputTokens?: number | undefined;
      chunkDelayMs?: number | undefined;
    }
  /**
   * A reply that calls tools: optional text first, then one tool_use block per call, its
   * input streamed as several `input_json_delta` fragments; stop reason `tool_use`.
   */
  | {
      kind: 'tool-use';
      chunks?: string[] | undefined;
      calls: FakeToolCall[];
      stopReason?: string | undefined;
      inputTokens?: number | undefined;
      outputTokens?: number | undefined;
      chunkDelayMs?: number | undefined;
      /** Destroy the socket in the middle of the last call's input. */
      cutMidInput?: boolean | undefined;
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

export interface FakeToolCall {
  /** Default `toolu_fake_<request>_<call>`. */
  id?: string | undefined;
  name: string;
  input?: Record<string, unknown> | undefined;
  /** The fragments sent instead of the input's JSON (e.g. malformed JSON). */
  partialJson?: string[] | undefined;
}

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
  /** As sent: strings or content blocks (tool_use, tool_result with tool_use_id…). */
  messages: unknown;
  /** As sent (name, description, input_schema), or undefined when none were offered. */
  tools: unknown;
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
      tools: fields.tools,
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
    // Counting takes no scripted step: it is answered from the prompt alone.
    if (record.path.split('?')[0] === COUNT_TOKENS_PATH) return sendTokenCount(res, record);
    const next = queue.shift() ?? fallback;
    const step = typeof next === 'function' ? next(record) : next;
    await perform(step, record, res, n);
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
