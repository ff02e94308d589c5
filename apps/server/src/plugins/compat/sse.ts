import type { FastifyReply } from 'fastify';

/**
 * A Server-Sent Events response written straight to the socket. Headers Fastify already set
 * on the reply (request id, CORS) are carried over. Writes wait for the socket to drain, so a
 * slow reader slows the model call instead of filling memory; a gone reader ends the wait.
 */
export class SseWriter {
  constructor(private readonly reply: FastifyReply) {
    reply.hijack();
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(reply.getHeaders())) {
      if (value !== undefined) headers[name] = String(value);
    }
    reply.raw.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
  }

  get open(): boolean {
    return !this.reply.raw.destroyed && !this.reply.raw.writableEnded;
  }

  async write(chunk: string): Promise<void> {
    const raw = this.reply.raw;
    if (!this.open) return;
    if (raw.write(chunk)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        raw.off('drain', done);
        raw.off('close', done);
        resolve();
      };
      raw.once('drain', done);
      raw.once('close', done);
    });
  }

  /** An `event:` + `data:` pair (Anthropic's framing). */
  event(name: string, data: unknown): Promise<void> {
    return this.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** A bare `data:` line (OpenAI's framing). */
  data(data: unknown): Promise<void> {
    return this.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
  }

  end(): void {
    if (this.open) this.reply.raw.end();
  }
}

/**
 * Aborted when the client goes away before the response is complete: the model call stops
 * and is settled for what it produced.
 */
export function disconnectSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}
