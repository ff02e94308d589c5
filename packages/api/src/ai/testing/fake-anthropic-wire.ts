/**
 * The Anthropic Messages API wire format, as the fake server writes it: the SSE event
 * sequence of a streamed message and the JSON bodies of a plain reply and of an error.
 * Shapes follow what the real API sends, so the real SDK parses them unchanged.
 */

export interface ReplyShape {
  id: string;
  model: string;
  text: string[];
  thinking: string[];
  /** Tool calls after the text; with some, a reply without text has no text block. */
  tools: ToolCallShape[];
  stopReason: string;
  stopSequence: string | null;
  inputTokens: number;
  outputTokens: number;
  cacheWriteTokens?: number | undefined;
  cacheReadTokens?: number | undefined;
}

export interface ToolCallShape {
  id: string;
  name: string;
  input: unknown;
  /** The input as the `input_json_delta` fragments that stream it. */
  partialJson: string[];
}

export interface SseEvent {
  event: string;
  data: unknown;
}

export function sse({ event, data }: SseEvent): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

const ev = (event: string, data: Record<string, unknown>): SseEvent => ({
  event,
  data: { type: event, ...data },
});

function usage(inputTokens: number, outputTokens: number, r?: ReplyShape) {
  return {
    input_tokens: inputTokens,
    cache_creation_input_tokens: r?.cacheWriteTokens ?? 0,
    cache_read_input_tokens: r?.cacheReadTokens ?? 0,
    output_tokens: outputTokens,
    service_tier: 'standard',
  };
}

/** The events before the first text delta: message_start, block start, a ping (the text
 *  block only when the reply has one; see toolEvents). */
export function openingEvents(r: ReplyShape): SseEvent[] {
  if (!hasText(r)) return [messageStart(r), ...thinkingEvents(r)];
  return [
    messageStart(r),
    ...thinkingEvents(r),
    ev('content_block_start', {
      index: textIndex(r),
      content_block: { type: 'text', text: '', citations: null },
    }),
    ev('ping', {}),
  ];
}

function messageStart(r: ReplyShape): SseEvent {
  const message = {
    id: r.id,
    type: 'message',
    role: 'assistant',
    model: r.model,
    content: [],
    stop_reason: null,
    stop_sequence: null,
    // As the real API does, the output count starts at 1 and is final in message_delta.
    usage: usage(r.inputTokens, 1, r),
  };
  return ev('message_start', { message });
}

function thinkingEvents(r: ReplyShape): SseEvent[] {
  if (r.thinking.length === 0) return [];
  return [
    ev('content_block_start', {
      index: 0,
      content_block: { type: 'thinking', thinking: '', signature: '' },
    }),
    ...r.thinking.map((thinking) =>
      ev('content_block_delta', { index: 0, delta: { type: 'thinking_delta', thinking } }),
    ),
    ev('content_block_delta', {
      index: 0,
      delta: { type: 'signature_delta', signature: 'fake-signature' },
    }),
    ev('content_block_stop', { index: 0 }),
  ];
}

export function textDelta(r: ReplyShape, text: string): SseEvent {
  return ev('content_block_delta', { index: textIndex(r), delta: { type: 'text_delta', text } });
}

/** After the last text delta: the text block's stop (when there is a text block). */
export function textStopEvents(r: ReplyShape): SseEvent[] {
  return hasText(r) ? [ev('content_block_stop', { index: textIndex(r) })] : [];
}

/**
 * One tool call as the API streams it: the block starts with an empty input, the input
 * follows as JSON fragments, then the block stops. `open` leaves the block unfinished.
 */
export function toolEvents(r: ReplyShape, i: number, open = false): SseEvent[] {
  const call = r.tools[i];
  if (!call) return [];
  const index = textIndex(r) + (hasText(r) ? 1 : 0) + i;
  const events = [
    ev('content_block_start', {
      index,
      content_block: { type: 'tool_use', id: call.id, name: call.name, input: {} },
    }),
  ];
  // The API pings once, after the first block of the reply starts.
  if (i === 0 && !hasText(r)) events.push(ev('ping', {}));
  for (const partial_json of call.partialJson) {
    events.push(
      ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json } }),
    );
  }
  if (!open) events.push(ev('content_block_stop', { index }));
  return events;
}

/** The events that end the message: message_delta (stop reason, usage), message_stop. */
export function closingEvents(r: ReplyShape): SseEvent[] {
  return [
    ev('message_delta', {
      delta: { stop_reason: r.stopReason, stop_sequence: r.stopSequence },
      usage: { output_tokens: r.outputTokens },
    }),
    ev('message_stop', {}),
  ];
}

/** The SSE `error` event the API sends when a stream fails after it started. */
export function errorEvent(type: string, message: string): SseEvent {
  return { event: 'error', data: errorBody(type, message) };
}

/** The body of a non-streamed reply. */
export function messageBody(r: ReplyShape): unknown {
  const content: unknown[] = [];
  if (r.thinking.length > 0) {
    content.push({ type: 'thinking', thinking: r.thinking.join(''), signature: 'fake-signature' });
  }
  if (hasText(r)) content.push({ type: 'text', text: r.text.join(''), citations: null });
  for (const call of r.tools) {
    content.push({ type: 'tool_use', id: call.id, name: call.name, input: call.input });
  }
  return {
    id: r.id,
    type: 'message',
    role: 'assistant',
    model: r.model,
    content,
    stop_reason: r.stopReason,
    stop_sequence: r.stopSequence,
    usage: usage(r.inputTokens, r.outputTokens, r),
  };
}

export function errorBody(type: string, message: string, requestId?: string): unknown {
  return {
    type: 'error',
    error: { type, message },
    ...(requestId ? { request_id: requestId } : {}),
  };
}

/** The error `type` the API uses for an HTTP status. */
export function errorTypeFor(status: number): string {
  const types: Record<number, string> = {
    400: 'invalid_request_error',
    401: 'authentication_error',
    403: 'permission_error',
    404: 'not_found_error',
    413: 'request_too_large',
    429: 'rate_limit_error',
    500: 'api_error',
    504: 'timeout_error',
    529: 'overloaded_error',
  };
  return types[status] ?? 'api_error';
}

function textIndex(r: ReplyShape): number {
  return r.thinking.length > 0 ? 1 : 0;
}

function hasText(r: ReplyShape): boolean {
  return r.text.length > 0 || r.tools.length === 0;
}

/**
 * Splits JSON into fragments as the API streams it: an empty first fragment, then pieces
 * that cut through keys and values, so only the whole parses.
 */
export function splitJson(json: string, pieces = 3): string[] {
  const size = Math.max(1, Math.ceil(json.length / pieces));
  const parts = [''];
  for (let at = 0; at < json.length; at += size) parts.push(json.slice(at, at + size));
  return parts;
}
