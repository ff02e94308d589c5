import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32 } from 'node:zlib';
import {
  closingEvents,
  openingEvents,
  type ReplyShape,
  type SseEvent,
  textDelta,
  textStopEvents,
  toolEvents,
} from './fake-anthropic-wire';

/**
 * A real HTTP server standing in for Bedrock Runtime's
 * POST /model/{modelId}/invoke-with-response-stream: each Messages API event goes out as a
 * binary AWS event-stream frame (`:event-type` chunk, payload `{"bytes": base64(event)}`),
 * as Bedrock frames them. SigV4 signatures are recorded, not checked.
 */

export type FakeBedrockStep =
  | {
      kind: 'reply';
      chunks?: string[] | undefined;
      calls?: Array<{ id: string; name: string; input: Record<string, unknown> }> | undefined;
      inputTokens?: number | undefined;
      outputTokens?: number | undefined;
      cacheWriteTokens?: number | undefined;
      cacheReadTokens?: number | undefined;
    }
  /** An HTTP error as Bedrock sends it: JSON `{message}` and `x-amzn-errortype`. */
  | { kind: 'error'; status: number; errorType?: string | undefined };

export interface FakeBedrockRequest {
  path: string;
  /** The SigV4 Authorization header (present means the SDK signed the request). */
  authorization: string | undefined;
  body: Record<string, unknown>;
}

export interface FakeBedrock {
  readonly url: string;
  readonly requests: FakeBedrockRequest[];
  script(...steps: FakeBedrockStep[]): void;
  reset(): void;
  close(): Promise<void>;
}

export async function startFakeBedrock(): Promise<FakeBedrock> {
  const requests: FakeBedrockRequest[] = [];
  const queue: FakeBedrockStep[] = [];
  let counter = 0;
  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const n = ++counter;
    const parts: Buffer[] = [];
    for await (const part of req) parts.push(part as Buffer);
    const body = JSON.parse(Buffer.concat(parts).toString('utf8') || '{}') as Record<
      string,
      unknown
    >;
    const path = req.url ?? '';
    requests.push({ path, authorization: req.headers.authorization, body });
    const model = /^\/model\/([^/]+)\/invoke-with-response-stream$/.exec(path)?.[1];
    if (req.method !== 'POST' || !model) {
      return sendError(res, 404, 'ResourceNotFoundException', `No route for ${path}`);
    }
    const step = queue.shift() ?? { kind: 'reply', chunks: ['Hello from Bedrock.'] };
    if (step.kind === 'error') {
      return sendError(res, step.status, step.errorType ?? 'InternalServerException', 'failed');
    }
    const r: ReplyShape = {
      id: `msg_bdrk_${n}`,
      model: decodeURIComponent(model),
      text: step.chunks ?? [],
      thinking: [],
      tools: (step.calls ?? []).map((c) => ({
        ...c,
        partialJson: [JSON.stringify(c.input)],
      })),
      stopReason: step.calls?.length ? 'tool_use' : 'end_turn',
      stopSequence: null,
      inputTokens: step.inputTokens ?? 10,
      outputTokens: step.outputTokens ?? 5,
    };
    const events: SseEvent[] = [
      ...openingEvents(r),
      ...r.text.map((t) => textDelta(r, t)),
      ...textStopEvents(r),
      ...r.tools.flatMap((_, i) => toolEvents(r, i)),
      ...closingEvents(r),
    ];
    withCacheUsage(events, step);
    res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream' });
    for (const e of events) res.write(chunkFrame(e.data));
    res.end();
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    script: (...steps) => {
      queue.push(...steps);
    },
    reset: () => {
      queue.length = 0;
      requests.length = 0;
      counter = 0;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) =>
        server.close((err) => (err ? reject(err) : resolve())),
      );
    },
  };
}

/** Puts the scripted cache counts into message_start's usage, where the API reports them. */
function withCacheUsage(events: SseEvent[], step: Extract<FakeBedrockStep, { kind: 'reply' }>) {
  const start = events[0]?.data as { message?: { usage?: Record<string, number> } } | undefined;
  const usage = start?.message?.usage;
  if (!usage) return;
  usage.cache_creation_input_tokens = step.cacheWriteTokens ?? 0;
  usage.cache_read_input_tokens = step.cacheReadTokens ?? 0;
}

function sendError(res: ServerResponse, status: number, errorType: string, message: string) {
  res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': errorType });
  res.end(JSON.stringify({ message }));
}

/**
 * One event-stream message: total and header lengths, a CRC of those eight bytes, the
 * headers, the payload, and a CRC of everything before it (all big-endian).
 */
export function chunkFrame(event: unknown): Buffer {
  const payload = Buffer.from(
    JSON.stringify({ bytes: Buffer.from(JSON.stringify(event)).toString('base64') }),
  );
  const headers = Buffer.concat([
    header(':event-type', 'chunk'),
    header(':content-type', 'application/json'),
    header(':message-type', 'event'),
  ]);
  const total = 12 + headers.length + payload.length + 4;
  const prelude = Buffer.alloc(8);
  prelude.writeUInt32BE(total, 0);
  prelude.writeUInt32BE(headers.length, 4);
  const preludeCrc = Buffer.alloc(4);
  preludeCrc.writeUInt32BE(crc32(prelude), 0);
  const body = Buffer.concat([prelude, preludeCrc, headers, payload]);
  const messageCrc = Buffer.alloc(4);
  messageCrc.writeUInt32BE(crc32(body), 0);
  return Buffer.concat([body, messageCrc]);
}

/** A string header: name length, name, type 7 (string), value length (2 bytes), value. */
function header(name: string, value: string): Buffer {
  const n = Buffer.from(name);
  const v = Buffer.from(value);
  const out = Buffer.alloc(1 + n.length + 1 + 2 + v.length);
  out.writeUInt8(n.length, 0);
  n.copy(out, 1);
  out.writeUInt8(7, 1 + n.length);
  out.writeUInt16BE(v.length, 2 + n.length);
  v.copy(out, 4 + n.length);
  return out;
}
