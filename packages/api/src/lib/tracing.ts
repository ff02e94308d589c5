import { type Attributes, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';

/**
 * OpenTelemetry spans. The API package only creates spans through `@opentelemetry/api`: with
 * no tracer provider registered (the default: tracing off) every call here is a no-op. The
 * server registers one when the standard OTEL_EXPORTER_OTLP_* variables are set
 * (apps/server/src/tracing.ts). Attributes never hold message text, tokens or keys.
 */
/**
 * The tracer, looked up at each use: a tracer taken before the server registers its provider
 * would stay a no-op when the SDK and this package load different builds of the API (CommonJS
 * and ESM), which keep separate proxies; the registered provider itself is shared.
 */
export function tracer() {
  return trace.getTracer('smartspace');
}

let enabled = false;

/**
 * Whether a tracer provider is registered (the server says so when it registers one). Spans
 * on hot paths that cost an allocation even as no-ops (a span per SQL statement) check it.
 */
export function tracingEnabled(): boolean {
  return enabled;
}

export function setTracingEnabled(on: boolean): void {
  enabled = on;
}

/** A span around one SQL statement: its text (placeholders, never the values), its timing. */
export function traceStatement<T>(text: unknown, work: Promise<T>): Promise<T> {
  const span = tracer().startSpan('db.query', {
    kind: SpanKind.CLIENT,
    attributes: {
      'db.system': 'postgresql',
      'db.statement': typeof text === 'string' ? text.slice(0, 1000) : '',
    },
  });
  work.then(
    () => span.end(),
    (err: unknown) => {
      failSpan(span, err);
      span.end();
    },
  );
  return work;
}

/** Runs `fn` in a span that is the active one for everything `fn` awaits. */
export function inSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  return tracer().startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      failSpan(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/** Marks a span failed with the error's code (an AppError's or ModelError's) and name. */
export function failSpan(span: Span, err: unknown): void {
  const code = (err as { code?: unknown }).code;
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: typeof code === 'string' ? code : err instanceof Error ? err.name : 'error',
  });
  if (typeof code === 'string') span.setAttribute('smartspace.error_code', code);
}
