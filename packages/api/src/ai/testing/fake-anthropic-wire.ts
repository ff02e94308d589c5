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
  stopReason: string;
  inputTokens: number;
  outputTokens: number;
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

function usage(inputTokens: number, outputTokens: number) {
  return {
    input_tokens: inputTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    output_tokens: outputTokens,
    service_tier: 'standard',
  };
}

/** The events before the first text delta: message_start, block start, a ping. */
export function openingEvents(r: ReplyShape): SseEvent[] {
  const message = {
    id: r.id,
    type: 'message',
    role: 'assistant',
    model: r.model,
    content: [],
    stop_reason: null,
    stop_sequence: null,
    // As the real API does, the output count starts at 1 and is final in message_delta.
    usage: usage(r.inputTokens, 1),
  };
  const events = [ev('message_start', { message })];
  if (r.thinking.length > 0) {
    events.push(
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
    );
  }
  events.push(
    ev('content_block_start', {
      index: textIndex(r),
      content_block: { type: 'text', text: '', citations: null },
    }),
    ev('ping', {}),
  );
  return events;
}

export function textDelta(r: ReplyShape, text: string): SseEvent {
  return ev('content_block_delta', { index: textIndex(r), delta: { type: 'text_delta', text } });
}

/** The events after the last text delta: block stop, message_delta, message_stop. */
export function closingEvents(r: ReplyShape): SseEvent[] {
  return [
    ev('content_block_stop', { index: textIndex(r) }),
    ev('message_delta', {
      delta: { stop_reason: r.stopReason, stop_sequence: null },
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
  content.push({ type: 'text', text: r.text.join(''), citations: null });
  return {
    id: r.id,
    type: 'message',
    role: 'assistant',
    model: r.model,
    content,
    stop_reason: r.stopReason,
    stop_sequence: null,
    usage: usage(r.inputTokens, r.outputTokens),
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
