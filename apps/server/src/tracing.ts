import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { setTracingEnabled } from '@smartspace/api';

/**
 * OpenTelemetry tracing, off unless an OTLP endpoint is configured
 * (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). The exporter reads the
 * standard OTEL_EXPORTER_OTLP_* variables itself (headers, timeout, compression). Spans: one
 * per tRPC call, its SQL statements (PostgreSQL), model calls (model, tokens, cost) and run
 * steps; a request's log line carries its trace id.
 */
export interface Tracing {
  shutdown(): Promise<void>;
}

export function startTracing(opts: {
  serviceName: string;
  /** Where spans go; default a batching OTLP/HTTP exporter (tests pass an in-memory one). */
  processor?: SpanProcessor;
}): Tracing {
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': opts.serviceName }),
    spanProcessors: [opts.processor ?? new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  // Registers the provider and the AsyncLocalStorage context manager that carries the active
  // span through awaits.
  provider.register();
  setTracingEnabled(true);
  return {
    async shutdown() {
      setTracingEnabled(false);
      await provider.shutdown();
    },
  };
}
