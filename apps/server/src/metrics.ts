import type { GatewayCallSummary } from '@smartspace/api';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

/**
 * The server's Prometheus metrics (GET /metrics). Label sets are bounded: route patterns,
 * procedure names, error codes, model ids, never a user, project or request id. Process,
 * heap, GC and event-loop lag come from prom-client's defaults.
 */
export interface Metrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route'>;
  trpcCalls: Counter<'procedure' | 'type'>;
  trpcErrors: Counter<'procedure' | 'code' | 'app_code'>;
  gatewayCalls: Counter<'model' | 'source' | 'outcome' | 'error_code'>;
  gatewayTokens: Counter<'model' | 'direction'>;
  gatewayCost: Counter<'model'>;
  gatewayDuration: Histogram<'model' | 'outcome'>;
  runsFinished: Counter<'status'>;
  eventLag: Histogram;
  runStepDuration: Histogram<'kind'>;
  /** The hooks createApi takes (`observe`). */
  observeGatewayCall(call: GatewayCallSummary): void;
  observeRunStep(kind: 'model' | 'tool', seconds: number): void;
  observeRunFinished(status: 'succeeded' | 'failed' | 'cancelled'): void;
  observeEventDelivered(lagSeconds: number): void;
}

const SECONDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'smartspace_' });
  const registers = [registry];
  const gatewayCalls = new Counter({
    name: 'smartspace_gateway_calls_total',
    help: 'Model calls through the gateway by model, source, outcome and error code',
    labelNames: ['model', 'source', 'outcome', 'error_code'] as const,
    registers,
  });
  const gatewayTokens = new Counter({
    name: 'smartspace_gateway_tokens_total',
    help: 'Tokens of finished gateway calls by model and direction (input, output)',
    labelNames: ['model', 'direction'] as const,
    registers,
  });
  const gatewayCost = new Counter({
    name: 'smartspace_gateway_cost_usdc_total',
    help: 'What finished gateway calls cost, in USDC',
    labelNames: ['model'] as const,
    registers,
  });
  const gatewayDuration = new Histogram({
    name: 'smartspace_gateway_call_duration_seconds',
    help: 'Gateway call duration from reservation to settlement',
    labelNames: ['model', 'outcome'] as const,
    buckets: SECONDS,
    registers,
  });
  const runsFinished = new Counter({
    name: 'smartspace_runs_finished_total',
    help: 'Agent runs finished on this instance, by status',
    labelNames: ['status'] as const,
    registers,
  });
  const runStepDuration = new Histogram({
    name: 'smartspace_run_step_duration_seconds',
    help: 'Agent run steps by kind (model, tool)',
    labelNames: ['kind'] as const,
    buckets: SECONDS,
    registers,
  });
  const eventLag = new Histogram({
    name: 'smartspace_event_delivery_lag_seconds',
    help: "Event publication (its row's created_at) to its hand-over to this instance's subscribers",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  return {
    registry,
    eventLag,
    observeEventDelivered: (lag) => eventLag.observe(Math.max(0, lag)),
    runsFinished,
    runStepDuration,
    observeRunStep: (kind, seconds) => runStepDuration.observe({ kind }, seconds),
    observeRunFinished: (status) => runsFinished.inc({ status }),
    httpRequests: new Counter({
      name: 'smartspace_http_requests_total',
      help: 'HTTP requests by method, route pattern and status code',
      labelNames: ['method', 'route', 'status'] as const,
      registers,
    }),
    httpDuration: new Histogram({
      name: 'smartspace_http_request_duration_seconds',
      help: 'HTTP request duration by method and route pattern',
      labelNames: ['method', 'route'] as const,
      buckets: SECONDS,
      registers,
    }),
    trpcCalls: new Counter({
      name: 'smartspace_trpc_calls_total',
      help: 'tRPC procedure calls (HTTP and WebSocket) by procedure and type',
      labelNames: ['procedure', 'type'] as const,
      registers,
    }),
    trpcErrors: new Counter({
      name: 'smartspace_trpc_errors_total',
      help: 'tRPC errors by procedure, tRPC code and SmartSpace appCode',
      labelNames: ['procedure', 'code', 'app_code'] as const,
      registers,
    }),
    gatewayCalls,
    gatewayTokens,
    gatewayCost,
    gatewayDuration,
    observeGatewayCall(call) {
      const outcome = call.status;
      gatewayCalls.inc({
        model: call.model,
        source: call.source,
        outcome,
        error_code: call.errorCode ?? '',
      });
      if (outcome === 'denied') return;
      gatewayTokens.inc({ model: call.model, direction: 'input' }, call.inputTokens);
      gatewayTokens.inc({ model: call.model, direction: 'output' }, call.outputTokens);
      gatewayCost.inc({ model: call.model }, Number(call.cost) / 1_000_000);
      if (call.latencyMs !== null) {
        gatewayDuration.observe({ model: call.model, outcome }, call.latencyMs / 1000);
      }
    },
  };
}
