/**
 * The fan-out bench's baseline child (started with --expose-gc): a bare `ws` WebSocketServer
 * on node:http that answers the client's subscribe message with tRPC's "started" frame and
 * broadcasts each published delta, stringified once, with a plain loop of ws.send. The frame
 * has the same shape and size as the app's, so the two differ only in what serves them.
 */
import { createServer } from 'node:http';
import { type WebSocket, WebSocketServer } from 'ws';
import { type BenchDelta, type FanoutReady, serveControl } from './fanout-protocol';

const STARTED = JSON.stringify({ id: 1, result: { type: 'started' } });

async function main(): Promise<void> {
  const server = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  const subscribers = new Set<WebSocket>();
  let eventId = 0;

  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      // The client's first frame is connectionParams, then the subscription request.
      if (String(data).includes('"subscription"')) {
        subscribers.add(ws);
        ws.send(STARTED);
      }
    });
    ws.on('close', () => subscribers.delete(ws));
    ws.on('error', () => subscribers.delete(ws));
  });

  serveControl({
    publishOne: async (_conversationId, delta: BenchDelta) => {
      // The app's frame for a tracked event: the id outside and inside the data envelope.
      const id = String(++eventId);
      const frame = JSON.stringify({
        id: 1,
        result: { type: 'data', data: { id, data: { type: 'reply.delta', ...delta } }, id },
      });
      for (const ws of subscribers) ws.send(frame);
    },
    sockets: () => wss.clients.size,
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('server has no port');

  let closing = false;
  const shutdown = () => {
    if (closing) return;
    closing = true;
    for (const ws of wss.clients) ws.terminate();
    wss.close();
    server.close(() => process.exit(0));
  };
  process.on('disconnect', shutdown);
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);

  const ready: FanoutReady = {
    type: 'ready',
    port: address.port,
    description: 'raw ws WebSocketServer on node:http, one JSON.stringify + a ws.send loop',
  };
  process.send?.(ready);
}

main().catch((err: unknown) => {
  console.error('fan-out baseline server failed:', err);
  process.exit(1);
});
