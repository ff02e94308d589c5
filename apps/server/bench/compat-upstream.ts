/**
 * The compat bench's upstream (a child of compat.ts): a stand-in for api.anthropic.com that
 * answers every POST /v1/messages with the same streamed reply at once, no pause between
 * events. Both sides of the comparison call it, so the upstream is identical; it runs in its
 * own process so that neither the server nor the load generator pays for it.
 */
import { createServer } from 'node:http';

export interface UpstreamReady {
  type: 'ready';
  port: number;
}

/** Text deltas per reply, and the tokens the reply reports. */
export const UPSTREAM_DELTAS = 8;
const WORDS = Array.from({ length: UPSTREAM_DELTAS }, (_, i) => `word${i} `);

function sse(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** The Messages API's event sequence for one text reply; model echoed back as asked. */
function reply(model: string): string {
  const id = `msg_bench${Date.now().toString(36)}`;
  const events = [
    sse('message_start', {
      type: 'message_start',
      message: {
        id,
        type: 'message',
        role: 'assistant',
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 10, output_tokens: 1 },
      },
    }),
    sse('content_block_start', {
      type: 'content_block_start',
      index: 0,
      content_block: { type: 'text', text: '' },
    }),
    ...WORDS.map((text) =>
      sse('content_block_delta', {
        type: 'content_block_delta',
        index: 0,
        delta: { type: 'text_delta', text },
      }),
    ),
    sse('content_block_stop', { type: 'content_block_stop', index: 0 }),
    sse('message_delta', {
      type: 'message_delta',
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: { output_tokens: UPSTREAM_DELTAS },
    }),
    sse('message_stop', { type: 'message_stop' }),
  ];
  return events.join('');
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    if (req.method !== 'POST' || !req.url?.startsWith('/v1/messages')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ type: 'error', error: { type: 'not_found_error', message: 'no' } }));
      return;
    }
    const body = JSON.parse(Buffer.concat(chunks).toString()) as { model?: string };
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.end(reply(body.model ?? 'unknown'));
  });
});
server.keepAliveTimeout = 60_000;

server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('upstream has no port');
  const ready: UpstreamReady = { type: 'ready', port: address.port };
  process.send?.(ready);
});
process.on('disconnect', () => server.close(() => process.exit(0)));
process.on('SIGTERM', () => process.exit(0));
