import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A real HTTP server speaking OpenAI Chat Completions (POST /v1/chat/completions, JSON and
 * SSE `data:` chunks ending in `[DONE]`), so tests drive the real `openai` SDK over a socket.
 * Each request takes the next scripted step; with none left it gets a short fixed reply.
 *
 *   const fake = await startFakeOpenAI();
 *   fake.script({ kind: 'error', status: 503 }, { kind: 'reply', chunks: ['Hi'] });
 *   createOpenAIProvider({ apiKey: fake.apiKey, baseURL: fake.url, models });
 */

export const FAKE_OPENAI_API_KEY = 'sk-openai-fake-test-key';

export type FakeOpenAIStep =
  /** Text chunks, then tool calls (arguments streamed in two fragments), finish, usage. */
  | {
      kind: 'reply';
      chunks?: string[] | undefined;
      calls?: Array<{ id?: string; name: string; arguments: string }> | undefined;
      finishReason?: string | undefined;
      promptTokens?: number | undefined;
      completionTokens?: number | undefined;
      /** Reported as prompt_tokens_details.cached_tokens (part of prompt_tokens). */
      cachedTokens?: number | undefined;
      /** Leave out the usage chunk, as servers that ignore include_usage do. */
      noUsage?: boolean | undefined;
      chunkDelayMs?: number | undefined;
    }
  /** An HTTP error with OpenAI's error body. */
  | { kind: 'error'; status: number; message?: string | undefined; type?: string | undefined }
  /** These text chunks, then the socket is destroyed. */
  | { kind: 'cut'; chunks: string[] };

export interface FakeOpenAIRequest {
  path: string;
  apiKey: string | undefined;
  body: Record<string, unknown>;
}

export interface FakeOpenAI {
  /** Base URL for the SDK (ends in /v1). */
  readonly url: string;
  readonly apiKey: string;
  readonly requests: FakeOpenAIRequest[];
  script(...steps: FakeOpenAIStep[]): void;
  reset(): void;
  close(): Promise<void>;
}

export async function startFakeOpenAI(options: { apiKey?: string } = {}): Promise<FakeOpenAI> {
  const apiKey = options.apiKey ?? FAKE_OPENAI_API_KEY;
  const requests: FakeOpenAIRequest[] = [];
  const queue: FakeOpenAIStep[] = [];
  let counter = 0;

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const n = ++counter;
    const parts: Buffer[] = [];
    for await (const part of req) parts.push(part as Buffer);
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, unknown>;
    } catch {
      return sendError(res, 400, 'invalid_request_error', 'We could not parse the JSON body');
    }
    const bearer = /^Bearer (.+)$/i.exec(String(req.headers.authorization ?? ''))?.[1];
    requests.push({ path: req.url ?? '', apiKey: bearer, body });
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      return sendError(res, 404, 'invalid_request_error', `Unknown route ${req.url}`);
    }
    if (bearer !== apiKey) {
      return sendError(res, 401, 'invalid_request_error', 'Incorrect API key provided');
    }
    if (typeof body.model !== 'string' || !Array.isArray(body.messages)) {
      return sendError(res, 400, 'invalid_request_error', 'model and messages are required');
    }
    const step = queue.shift() ?? { kind: 'reply', chunks: ['Hello', ' from', ' fake', ' GPT.'] };
    if (step.kind === 'error') {
      return sendError(res, step.status, step.type ?? 'server_error', step.message ?? 'failed');
    }
    const id = `chatcmpl-fake-${n}`;
    const chunk = (delta: unknown, finish: string | null = null) => ({
      id,
      object: 'chat.completion.chunk',
      created: 1_700_000_000,
      model: body.model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    });
    if (body.stream !== true) return sendJson(res, step, body, id);

    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const send = (data: unknown) =>
      new Promise<void>((resolve) =>
        res.write(`data: ${JSON.stringify(data)}\n\n`, () => resolve()),
      );
    await send(chunk({ role: 'assistant', content: '' }));
    for (const text of step.chunks ?? []) {
      if (step.kind === 'reply' && step.chunkDelayMs) await sleep(step.chunkDelayMs);
      await send(chunk({ content: text }));
    }
    if (step.kind === 'cut') {
      res.destroy();
      return;
    }
    for (const [index, call] of (step.calls ?? []).entries()) {
      const half = Math.floor(call.arguments.length / 2);
      await send(
        chunk({
          tool_calls: [
            {
              index,
              id: call.id ?? `call_fake_${n}_${index + 1}`,
              type: 'function',
              function: { name: call.name, arguments: call.arguments.slice(0, half) },
            },
          ],
        }),
      );
      await send(
        chunk({ tool_calls: [{ index, function: { arguments: call.arguments.slice(half) } }] }),
      );
    }
    await send(chunk({}, finishOf(step)));
    const streamOptions = body.stream_options as { include_usage?: boolean } | undefined;
    if (streamOptions?.include_usage && !step.noUsage) {
      await send({ ...chunk({}), choices: [], usage: usageOf(step, body) });
    }
    res.end('data: [DONE]\n\n');
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    apiKey,
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

type ReplyStep = Extract<FakeOpenAIStep, { kind: 'reply' }>;

function finishOf(step: ReplyStep): string {
  return step.finishReason ?? (step.calls?.length ? 'tool_calls' : 'stop');
}

function usageOf(step: ReplyStep, body: Record<string, unknown>) {
  const prompt = step.promptTokens ?? Math.ceil(JSON.stringify(body.messages).length / 4);
  const output =
    step.completionTokens ??
    Math.ceil(
      ((step.chunks ?? []).join('') + (step.calls ?? []).map((c) => c.arguments).join('')).length /
        4,
    );
  return {
    prompt_tokens: prompt,
    completion_tokens: output,
    total_tokens: prompt + output,
    ...(step.cachedTokens ? { prompt_tokens_details: { cached_tokens: step.cachedTokens } } : {}),
  };
}

function sendJson(
  res: ServerResponse,
  step: FakeOpenAIStep,
  body: Record<string, unknown>,
  id: string,
) {
  if (step.kind !== 'reply') return sendError(res, 500, 'server_error', 'no JSON for this step');
  const calls = (step.calls ?? []).map((c, i) => ({
    id: c.id ?? `call_fake_${i + 1}`,
    type: 'function',
    function: { name: c.name, arguments: c.arguments },
  }));
  const content = (step.chunks ?? []).join('');
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(
    JSON.stringify({
      id,
      object: 'chat.completion',
      created: 1_700_000_000,
      model: body.model,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: content === '' && calls.length > 0 ? null : content,
            ...(calls.length > 0 ? { tool_calls: calls } : {}),
          },
          finish_reason: finishOf(step),
          logprobs: null,
        },
      ],
      usage: usageOf(step, body),
    }),
  );
}

function sendError(res: ServerResponse, status: number, type: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: { message, type, param: null, code: null } }));
}
