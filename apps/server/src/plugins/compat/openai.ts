import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply } from 'fastify';
import { authenticate } from './auth';
import { type CompatEvent, checkModel, complete, prepend } from './completion';
import type { Deps } from './deps';
import { openaiErrorBody, toCompatError, unexpected } from './errors';
import {
  ChatCompletionBody,
  ChunkEncoder,
  toChatCompletion,
  toCompatRequest,
} from './openai-shapes';
import { disconnectSignal, SseWriter } from './sse';
import { parseBody } from './validate';

/** OpenAI Chat Completions: POST /v1/chat/completions, JSON or streamed (`data:` chunks). */

const BODY_LIMIT = 1024 * 1024;

async function respondStream(opts: {
  reply: FastifyReply;
  events: AsyncGenerator<CompatEvent>;
  encoder: ChunkEncoder;
  signal: AbortSignal;
  log: FastifyBaseLogger;
}) {
  const sse = new SseWriter(opts.reply);
  try {
    await sse.data(opts.encoder.start());
    for await (const ev of opts.events) {
      for (const chunk of opts.encoder.encode(ev)) await sse.data(chunk);
    }
    await sse.data('[DONE]');
  } catch (err) {
    // OpenAI streams report a failure as a data chunk holding `error`; its SDK raises it.
    if (!opts.signal.aborted) {
      const e = toCompatError(err) ?? unexpected(err, opts.log);
      await sse.data(openaiErrorBody(e));
    }
  } finally {
    sse.end();
  }
}

export function openaiRoutes(app: FastifyInstance, deps: Deps): void {
  app.post('/v1/chat/completions', { bodyLimit: BODY_LIMIT }, async (req, reply) => {
    const who = await authenticate(deps, req, 'member');
    const body = parseBody(ChatCompletionBody, req.body);
    const modelMax = deps.models.get(body.model)?.maxOutputTokens ?? Number.MAX_SAFE_INTEGER;
    const request = toCompatRequest(body, modelMax);
    checkModel(deps, request.model, request.maxOutputTokens);
    const signal = disconnectSignal(reply);
    const events = complete(deps, who, request, signal);
    const meta = {
      id: `chatcmpl-${randomUUID().replaceAll('-', '')}`,
      created: Math.floor(Date.now() / 1000),
      model: body.model,
    };
    if (!body.stream) {
      const all: CompatEvent[] = [];
      for await (const ev of events) all.push(ev);
      return reply.send(toChatCompletion(all, meta));
    }
    const first = await events.next();
    return respondStream({
      reply,
      events: prepend(first, events),
      encoder: new ChunkEncoder(meta, body.stream_options?.include_usage === true),
      signal,
      log: req.log,
    });
  });
}
