import type { ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FakeStep, RecordedRequest } from './fake-anthropic';
import {
  closingEvents,
  errorBody,
  errorEvent,
  errorTypeFor,
  messageBody,
  openingEvents,
  type ReplyShape,
  type SseEvent,
  splitJson,
  sse,
  type ToolCallShape,
  textDelta,
  textStopEvents,
  toolEvents,
} from './fake-anthropic-wire';

/** How the fake server carries out one scripted step on the response. */

export async function perform(
  step: FakeStep,
  r: RecordedRequest,
  res: ServerResponse,
  n: number,
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
  const shape = replyShape(step, r, n);
  if (!r.stream) {
    if (step.kind === 'reply' || step.kind === 'tool-use') sendJson(res, 200, messageBody(shape));
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
  const delayMs = step.kind === 'reply' || step.kind === 'tool-use' ? (step.chunkDelayMs ?? 0) : 0;
  await write(res, openingEvents(shape));
  for (const text of shape.text) {
    if (delayMs > 0) await sleep(delayMs);
    await write(res, [textDelta(shape, text)]);
  }
  switch (step.kind) {
    case 'reply':
      await write(res, [...textStopEvents(shape), ...closingEvents(shape)]);
      res.end();
      return;
    case 'tool-use': {
      await write(res, textStopEvents(shape));
      const last = shape.tools.length - 1;
      for (let i = 0; i <= last; i++) {
        const open = step.cutMidInput === true && i === last;
        // One write per event, so fragments reach the client as separate reads.
        for (const event of toolEvents(shape, i, open)) {
          if (delayMs > 0) await sleep(delayMs);
          await write(res, [event]);
        }
      }
      if (step.cutMidInput) {
        await sleep(30);
        res.socket?.destroy();
        return;
      }
      await write(res, closingEvents(shape));
      res.end();
      return;
    }
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

/**
 * POST /v1/messages/count_tokens: the input tokens a reply to this prompt would report (the
 * fake's default count), so a test can hold the two against each other.
 */
export function sendTokenCount(res: ServerResponse, r: RecordedRequest): void {
  sendJson(res, 200, { input_tokens: approxTokens(promptText(r)) });
}

function replyShape(
  step: Exclude<FakeStep, { kind: 'error' }>,
  r: RecordedRequest,
  n: number,
): ReplyShape {
  const chunks = step.chunks ?? [];
  const tools: ToolCallShape[] =
    step.kind === 'tool-use'
      ? step.calls.map((c, i) => {
          const input = c.input ?? {};
          return {
            id: c.id ?? `toolu_fake_${n}_${i + 1}`,
            name: c.name,
            input,
            partialJson: c.partialJson ?? splitJson(JSON.stringify(input)),
          };
        })
      : [];
  const full = step.kind === 'reply' || step.kind === 'tool-use' ? step : undefined;
  const output = chunks.join('') + tools.map((t) => t.partialJson.join('')).join('');
  return {
    id: `msg_fake_${n}`,
    model: r.model ?? '',
    text: chunks,
    thinking: step.kind === 'reply' ? (step.thinking ?? []) : [],
    tools,
    stopReason: full?.stopReason ?? (step.kind === 'tool-use' ? 'tool_use' : 'end_turn'),
    stopSequence: step.kind === 'reply' ? (step.stopSequence ?? null) : null,
    cacheWriteTokens: step.kind === 'reply' ? step.cacheWriteTokens : undefined,
    cacheReadTokens: step.kind === 'reply' ? step.cacheReadTokens : undefined,
    inputTokens: full?.inputTokens ?? approxTokens(promptText(r)),
    outputTokens: full?.outputTokens ?? approxTokens(output),
  };
}

function write(res: ServerResponse, events: SseEvent[]): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed) return resolve();
    // Resolves even on error: a client that went away is a scenario, not a server failure.
    res.write(events.map(sse).join(''), () => resolve());
  });
}

export function sendError(
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

function promptText(r: RecordedRequest): string {
  return JSON.stringify([r.system ?? '', r.messages ?? []]);
}

function approxTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}
