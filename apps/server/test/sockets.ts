import WebSocket from 'ws';

/** A raw protocol-level socket, for what the typed client never sends. */
export function rawSocket(
  origin: string,
  opts: { token?: string; origin?: string; connectionParams?: boolean } = {},
) {
  const url = `${origin.replace(/^http/, 'ws')}/trpc${opts.connectionParams === false ? '' : '?connectionParams=1'}`;
  const ws = new WebSocket(url, opts.origin ? { headers: { origin: opts.origin } } : {});
  const messages: unknown[] = [];
  ws.on('message', (data) => {
    try {
      messages.push(JSON.parse(String(data)));
    } catch {
      messages.push(String(data));
    }
  });
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => {
      if (opts.connectionParams !== false) {
        ws.send(
          JSON.stringify({
            method: 'connectionParams',
            data: opts.token ? { token: opts.token } : {},
          }),
        );
      }
      resolve();
    });
    ws.once('unexpected-response', (req, res) => {
      req.destroy();
      reject(new Error(`HTTP ${res.statusCode}`));
    });
    ws.once('error', reject);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
  );
  return { ws, messages, opened, closed };
}

/** `ws`'s class, which the client accepts as its WebSocket option (Node 20 has no global one). */
export const WebSocketImpl = WebSocket;
