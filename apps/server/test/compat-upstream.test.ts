import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CompatServer,
  type KeyedProject,
  requestRows,
  startCompatServer,
} from './compat-harness';

/**
 * Upstream failures through the real Claude adapter: a stand-in for api.anthropic.com answers
 * each request with the status named in the prompt, or streams a reply and cuts it.
 */
function fakeUpstream(): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => {
      raw += c.toString();
    });
    req.on('end', () => {
      const body = JSON.parse(raw) as { messages: { content: string }[] };
      const prompt = String(body.messages.at(-1)?.content ?? '');
      const status = Number(/status:(\d{3})/.exec(prompt)?.[1] ?? 0);
      if (status) {
        const type =
          status === 529
            ? 'overloaded_error'
            : status === 429
              ? 'rate_limit_error'
              : 'invalid_request_error';
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ type: 'error', error: { type, message: `upstream ${status}` } }));
        return;
      }
      // A stream that starts, sends one word, and is cut before message_stop.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const send = (event: string, data: unknown) =>
        res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      send('message_start', {
        type: 'message_start',
        message: {
          id: 'msg_up',
          type: 'message',
          role: 'assistant',
          model: 'claude-haiku-4-5',
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: 7, output_tokens: 1 },
        },
      });
      send('content_block_start', {
        type: 'content_block_start',
        index: 0,
        content_block: { type: 'text', text: '' },
      });
      send('content_block_delta', {
        type: 'content_block_delta',
        index: 0,
        delta: { type: 'text_delta', text: 'Partial' },
      });
      setTimeout(() => res.destroy(), 20);
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({ server, url: `http://127.0.0.1:${port}` });
    });
  });
}

describe('upstream model failures, in each protocol', () => {
  let upstream: { server: Server; url: string };
  let server: CompatServer;
  let p: KeyedProject;
  let anthropic: Anthropic;
  let openai: OpenAI;

  beforeAll(async () => {
    upstream = await fakeUpstream();
    server = await startCompatServer(0, {
      ANTHROPIC_API_KEY: 'sk-ant-test',
      ANTHROPIC_BASE_URL: upstream.url,
      ANTHROPIC_MAX_RETRIES: '0',
    });
    p = await server.project('Upstream');
    anthropic = new Anthropic({ apiKey: p.secret, baseURL: server.origin, maxRetries: 0 });
    openai = new OpenAI({ apiKey: p.secret, baseURL: `${server.origin}/v1`, maxRetries: 0 });
  }, 30_000);
  afterAll(async () => {
    await server?.close();
    await new Promise((r) => upstream?.server.close(r));
  });

  const ask = (content: string) => ({
    model: 'claude-haiku-4-5',
    max_tokens: 50,
    messages: [{ role: 'user' as const, content }],
  });

  it('maps an overloaded upstream to 529 overloaded_error (OpenAI: 503), charging nothing', async () => {
    const call = anthropic.messages.create(ask('status:529'));
    await expect(call).rejects.toBeInstanceOf(Anthropic.InternalServerError);
    await expect(call).rejects.toMatchObject({
      status: 529,
      error: { error: { type: 'overloaded_error' } },
    });
    await expect(call).rejects.toThrow(/model\.overloaded/);
    const viaOpenAi = openai.chat.completions.create(ask('status:529'));
    await expect(viaOpenAi).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    await expect(viaOpenAi).rejects.toMatchObject({ status: 503, code: 'model.overloaded' });
    const rows = await requestRows(server, p.projectId);
    expect(rows.map((r) => [r.status, r.errorCode, r.cost, r.reserved])).toEqual([
      ['failed', 'model.overloaded', '0', '0'],
      ['failed', 'model.overloaded', '0', '0'],
    ]);
  });

  it('maps upstream 429 and 400 to the same statuses', async () => {
    await expect(anthropic.messages.create(ask('status:429'))).rejects.toBeInstanceOf(
      Anthropic.RateLimitError,
    );
    await expect(anthropic.messages.create(ask('status:400'))).rejects.toBeInstanceOf(
      Anthropic.BadRequestError,
    );
  });

  it('reports a stream cut upstream as an error event after the text already sent', async () => {
    const stream = anthropic.messages.stream(ask('go'));
    let text = '';
    stream.on('text', (t) => {
      text += t;
    });
    await expect(stream.finalMessage()).rejects.toThrow(/model\.stream_interrupted/);
    expect(text).toBe('Partial');
    const rows = await requestRows(server, p.projectId);
    expect(rows.at(-1)).toMatchObject({ status: 'failed', reserved: '0' });
  });
});
