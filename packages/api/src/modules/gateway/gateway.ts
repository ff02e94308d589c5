import { randomUUID } from 'node:crypto';
import { SpanKind } from '@opentelemetry/api';
import { and, eq, lt, sql } from 'drizzle-orm';
import {
  ModelError,
  type ModelEvent,
  type ModelInfo,
  type ModelProvider,
  type ModelRequest,
  type TokenCountRequest,
  type Usage,
} from '../../ai/provider';
import type { ModelRegistry } from '../../ai/registry';
import type { Config } from '../../config';
import { type Db, rowsOf } from '../../db/client';
import type { EventBus } from '../../events/bus';
import { AppError } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import { formatUsdc, MICRO, priceToPicoPerToken } from '../../lib/money';
import type { RateLimiter } from '../../lib/rate-limit';
import { failSpan, tracer } from '../../lib/tracing';
import { settleBalanceHold } from '../billing/billing.service';
import type { BudgetAlert } from '../budgets/budgets.dto';
import { settleBudgets } from '../budgets/budgets.service';
import type { PolicyCache } from '../policies/policies.cache';
import type { loadRules } from '../policies/policies.service';
import { ROLLUP_COLUMNS, recordFinished, rollUpFrom } from '../usage/usage.service';
import { apiRequestHolds, apiRequests } from '../usage/usage.table';
import { groupCommit } from './books';
import { estimateInputTokens, estimateOutputTokens } from './estimate';
import {
  type Admission,
  type CallColumns,
  catchUpAlerts,
  createLeases,
  sweepLeases,
} from './leases';

export interface GatewayCall extends Omit<ModelRequest, 'signal'> {
  projectId: string;
  userId: string | null;
  /** The project API key the call was made with, if any: its budgets and rate limits apply. */
  keyId?: string | null;
  agentId?: string | null;
  runId?: string | null;
  conversationId?: string | null;
  /** 'api': a call through the provider-compatible endpoints (/v1/messages, /v1/chat/completions). */
  source: 'chat' | 'run' | 'api';
  signal?: AbortSignal | undefined;
  /**
   * When given, each attempt's settlement (its usage row, spend and charge) is handed here
   * instead of awaited: the stream ends with the provider's, and the caller overlaps the
   * settlement with its own writes. The promise never rejects (a failed settlement is
   * logged). The call's worst case stays held until it lands, so the caller awaits it before
   * its next call on the same budget and before anything that must show the call's usage.
   */
  settled?: ((settling: Promise<void>) => void) | undefined;
}

/** Counting a prompt's tokens for a project (the compatible endpoints' count_tokens). */
export interface TokenCountCall extends TokenCountRequest {
  projectId: string;
  userId: string | null;
  keyId?: string | null;
}

/** What a finished or denied call was, for metrics: no ids, nothing per project. */
export interface GatewayCallSummary {
  model: string;
  source: GatewayCall['source'];
  status: 'succeeded' | 'failed' | 'cancelled' | 'denied';
  errorCode: string | null;
  inputTokens: number;
  outputTokens: number;
  /** Micro-USDC. */
  cost: bigint;
  latencyMs: number | null;
}

export interface GatewayDeps {
  db: Db;
  bus: EventBus;
  models: ModelRegistry;
  limiter: RateLimiter;
  log: Logger;
  billingMode: Config['billing']['mode'];
  /** The projects' policy rules, cached in process (policies.cache.ts). */
  policies: PolicyCache;
  /** Called once per finished or denied call (metrics listen); never throws into the call. */
  onCall?: ((call: GatewayCallSummary) => void) | undefined;
  /** Called with each budget threshold crossed (the audit log listens). */
  onAlert?: (projectId: string, alert: BudgetAlert) => Promise<void>;
  /** Budget leases (leases.ts): chunk size in worst cases, and idle time before return. */
  lease?: { calls: number; idleMs: number };
  /** LISTEN, for budget changes made on other instances. */
  listen?: (channel: string, onPayload: (payload: string) => void) => Promise<() => Promise<void>>;
}

const HEARTBEAT_MS = 10_000;
/** A call still running after this long is put on record as in progress. */
const START_RECORD_MS = 50;

/** Who and what a call is for: the identifying columns of its api_requests row. */
function callColumns(call: GatewayCall): CallColumns {
  return {
    projectId: call.projectId,
    userId: call.userId,
    keyId: call.keyId ?? null,
    agentId: call.agentId ?? null,
    runId: call.runId ?? null,
    conversationId: call.conversationId ?? null,
    source: call.source,
    model: call.model,
  };
}
interface Plan {
  model: string;
  maxOutputTokens: number;
  inputEstimate: number;
  price: Prices;
  worst: bigint;
}

type Prices = Pick<
  ModelInfo,
  'inputPricePerMTok' | 'outputPricePerMTok' | 'cacheWritePricePerMTok' | 'cacheReadPricePerMTok'
>;

/**
 * What a call cost, rounded up to a whole micro-USDC: prompt tokens at the input price, those
 * among them written to or read from the prompt cache at the cache prices (unset: input).
 */
export function usageCost(price: Prices, usage: Usage): bigint {
  const write = usage.cacheWriteTokens ?? 0;
  const read = usage.cacheReadTokens ?? 0;
  const plain = Math.max(0, usage.inputTokens - write - read);
  const input = priceToPicoPerToken(price.inputPricePerMTok);
  const rate = (p: string | undefined) => (p ? priceToPicoPerToken(p) : input);
  const pico =
    BigInt(plain) * input +
    BigInt(write) * rate(price.cacheWritePricePerMTok) +
    BigInt(read) * rate(price.cacheReadPricePerMTok) +
    BigInt(usage.outputTokens) * priceToPicoPerToken(price.outputPricePerMTok);
  return (pico + MICRO - 1n) / MICRO;
}

/**
 * The worst case before the call: every prompt token at the dearest input rate (a cache
 * write costs more than a plain input token), every output token the cap allows.
 */
function worstCost(price: Prices, inputTokens: number, outputTokens: number): bigint {
  let dearest = price.inputPricePerMTok;
  for (const r of [price.cacheWritePricePerMTok, price.cacheReadPricePerMTok]) {
    if (r && priceToPicoPerToken(r) > priceToPicoPerToken(dearest)) dearest = r;
  }
  return usageCost({ ...price, inputPricePerMTok: dearest }, { inputTokens, outputTokens });
}

type Rules = Awaited<ReturnType<typeof loadRules>>;

/**
 * Failures another route may not share: the upstream is busy, failing or unreachable. A bad
 * request or a bad key would fail the same way anywhere, or should be fixed, not hidden.
 */
const FALLBACK_CODES = new Set<string>([
  'model.rate_limited',
  'model.overloaded',
  'model.stream_interrupted',
]);

function isFallbackCause(e: unknown): e is ModelError {
  return e instanceof ModelError && FALLBACK_CODES.has(e.code);
}

/** An in-progress call whose heartbeat is older than this lost its process. */
export const STALE_CALL_MS = 60_000;

/**
 * Every model call goes through here. In order: policy (allowed models, output cap, cost
 * cap), rate limits per project, per member and per API key, an atomic reservation of the worst-case
 * cost against every applicable budget limit and the prepaid balance, the provider call,
 * then settlement of the actual cost and release of the rest. A call that dies is settled
 * in `finally`; one whose process dies is released by the sweeper.
 */
export function createGateway(deps: GatewayDeps) {
  async function deny(call: GatewayCall, error: AppError): Promise<never> {
    const c = callColumns(call);
    await recordFinished(deps.db, [
      {
        id: randomUUID(),
        project_id: c.projectId,
        user_id: c.userId,
        key_id: c.keyId,
        agent_id: c.agentId,
        run_id: c.runId,
        conversation_id: c.conversationId,
        source: c.source,
        model: c.model,
        status: 'denied',
        error_code: error.code,
        input_tokens: 0,
        output_tokens: 0,
        cache_write_tokens: 0,
        cache_read_tokens: 0,
        cost: '0',
        latency_ms: null,
      },
    ]).catch((err: unknown) => deps.log.warn({ err }, 'could not record a denied call'));
    observe({
      model: call.model,
      source: call.source,
      status: 'denied',
      errorCode: error.code,
      inputTokens: 0,
      outputTokens: 0,
      cost: 0n,
      latencyMs: null,
    });
    throw error;
  }

  function observe(summary: GatewayCallSummary) {
    try {
      deps.onCall?.(summary);
    } catch (err) {
      deps.log.warn({ err }, 'a gateway call observer failed');
    }
  }

  async function rateLimit(call: GatewayCall, kind: 'rpm' | 'tpm', limit: number, cost: number) {
    const keys = [`${kind}:p:${call.projectId}`];
    if (call.userId) keys.push(`${kind}:m:${call.projectId}:${call.userId}`);
    if (call.keyId) keys.push(`${kind}:k:${call.projectId}:${call.keyId}`);
    for (const key of keys) {
      const r = await deps.limiter.hit(key, limit, 60_000, cost);
      if (!r.allowed) {
        const what = kind === 'rpm' ? 'requests' : 'tokens';
        await deny(
          call,
          new AppError(
            'rate_limited',
            `This project's ${what}-per-minute policy is used up; retry shortly`,
            {
              retryAfterMs: r.retryAfterMs,
            },
          ),
        );
      }
    }
  }

  /** Calls holding a reservation in this process (metrics read it). */
  let inFlight = 0;

  const leases = createLeases({
    db: deps.db,
    bus: deps.bus,
    log: deps.log,
    calls: deps.lease?.calls ?? 32,
    idleMs: deps.lease?.idleMs ?? 2_000,
    staleMs: STALE_CALL_MS,
    listen: deps.listen,
  });

  /**
   * A call's in-progress row, so that a call interrupted by a crash is still on record (the
   * sweeper marks it interrupted): written in group commits beside a call still running after
   * START_RECORD_MS, not waited for. A shorter call is written once, finished. Settlement
   * upserts the finished row, so whichever lands second leaves it finished.
   */
  const recordStart = groupCommit(async (rows: Array<typeof apiRequests.$inferInsert>) => {
    await deps.db.insert(apiRequests).values(rows).onConflictDoNothing();
    return rows.map(() => undefined);
  });

  async function settle(opts: {
    call: GatewayCall;
    admission: Admission;
    usage: Usage;
    cost: bigint;
    status: 'succeeded' | 'failed' | 'cancelled';
    errorCode: string | null;
    startedAt: number;
  }) {
    const latencyMs = Date.now() - opts.startedAt;
    const alerts = await leases.settle({
      admission: opts.admission,
      columns: callColumns(opts.call),
      startedAt: new Date(opts.startedAt),
      status: opts.status,
      errorCode: opts.errorCode,
      inputTokens: opts.usage.inputTokens,
      outputTokens: opts.usage.outputTokens,
      cacheWriteTokens: opts.usage.cacheWriteTokens ?? 0,
      cacheReadTokens: opts.usage.cacheReadTokens ?? 0,
      cost: opts.cost,
      charge: deps.billingMode === 'prepaid' ? opts.cost : 0n,
      latencyMs,
    });
    observe({
      model: opts.call.model,
      source: opts.call.source,
      status: opts.status,
      errorCode: opts.errorCode,
      inputTokens: opts.usage.inputTokens,
      outputTokens: opts.usage.outputTokens,
      cost: opts.cost,
      latencyMs,
    });
    for (const { projectId, alert } of alerts) {
      await deps.onAlert?.(projectId, alert).catch(() => {});
    }
  }

  /**
   * The reservation: every applicable budget limit and, in prepaid mode, the balance hold
   * the worst case, all or nothing, from the project's lease (leases.ts). A refusal throws
   * the AppError.
   */
  async function reserve(call: GatewayCall, model: string, worst: bigint): Promise<Admission> {
    const columns = { ...callColumns(call), model };
    const admission = await leases.admit(
      columns,
      worst,
      deps.billingMode === 'prepaid' && worst > 0n,
    );
    return admission;
  }

  /** What one route would cost at worst for this call, within the policy's output cap. */
  function plan(call: GatewayCall, info: ModelInfo, rules: Rules): Plan {
    const maxOutputTokens = Math.min(
      call.maxOutputTokens,
      info.maxOutputTokens,
      rules.maxOutputTokens ?? Number.MAX_SAFE_INTEGER,
    );
    const inputEstimate = estimateInputTokens(call.system, call.messages, call.tools);
    const price: Prices = {
      inputPricePerMTok: info.inputPricePerMTok,
      outputPricePerMTok: info.outputPricePerMTok,
      cacheWritePricePerMTok: info.cacheWritePricePerMTok,
      cacheReadPricePerMTok: info.cacheReadPricePerMTok,
    };
    const worst = worstCost(price, inputEstimate, maxOutputTokens);
    return { model: info.id, maxOutputTokens, inputEstimate, price, worst };
  }

  /**
   * One provider call on a reservation, settled however it ends. Returns the error to fall
   * back from when the provider failed before its first token in a way another route may
   * not (`canFallBack`); throws every other failure.
   */
  async function* attempt(
    call: GatewayCall,
    p: Plan,
    provider: ModelProvider,
    reserved: Admission,
    canFallBack: boolean,
  ): AsyncGenerator<ModelEvent, ModelError | null> {
    const startedAt = Date.now();
    inFlight++;
    // A child of whatever span is active (the tRPC call, the run step); one per route tried.
    const span = tracer().startSpan('model.call', {
      kind: SpanKind.CLIENT,
      attributes: {
        'gen_ai.request.model': p.model,
        'gen_ai.system': deps.models.get(p.model)?.provider ?? 'unknown',
        'smartspace.source': call.source,
        'smartspace.project_id': call.projectId,
      },
    });
    const recordTimer = setTimeout(() => {
      recordStart({
        id: reserved.requestId,
        ...callColumns({ ...call, model: p.model }),
        status: 'in_progress',
        createdAt: new Date(startedAt),
        heartbeatAt: new Date(),
      }).catch((err: unknown) => deps.log.warn({ err }, 'could not record a call as started'));
    }, START_RECORD_MS);
    const heartbeat = setInterval(() => {
      void deps.db
        .update(apiRequests)
        .set({ heartbeatAt: new Date() })
        .where(and(eq(apiRequests.id, reserved.requestId), eq(apiRequests.status, 'in_progress')))
        .catch(() => {});
    }, HEARTBEAT_MS);
    heartbeat.unref();

    let usage: Usage | null = null;
    let text = '';
    let started = false;
    let status: 'succeeded' | 'failed' | 'cancelled' = 'failed';
    let errorCode: string | null = null;
    let fallBackFrom: ModelError | null = null;
    try {
      const { settled: _handedOver, ...request } = call;
      const req = { ...request, model: p.model, maxOutputTokens: p.maxOutputTokens };
      for await (const ev of provider.stream({ ...req, signal: call.signal })) {
        if (ev.type === 'delta') text += ev.text;
        else if (ev.type === 'done') usage = ev.usage;
        started = true;
        yield ev;
      }
      status = 'succeeded';
    } catch (e) {
      status =
        call.signal?.aborted || (e instanceof ModelError && e.code === 'model.cancelled')
          ? 'cancelled'
          : 'failed';
      errorCode = e instanceof ModelError ? e.code : 'gateway.failed';
      // Once anything reached the caller, switching models would splice two replies.
      if (canFallBack && !started && status === 'failed' && isFallbackCause(e)) fallBackFrom = e;
      else throw e;
    } finally {
      clearTimeout(recordTimer);
      clearInterval(heartbeat);
      inFlight--;
      // Without reported usage (the stream died), charge what was evidently consumed.
      const final: Usage = usage ?? {
        inputTokens: text.length > 0 ? p.inputEstimate : 0,
        outputTokens: estimateOutputTokens(text),
      };
      // A consumer that stops early (return()) ends here too: that is a cancel, unless the
      // provider had already finished (the consumer stopped after reading `done`).
      if (status === 'failed' && errorCode === null) status = usage ? 'succeeded' : 'cancelled';
      const cost = usageCost(p.price, final);
      span.setAttributes({
        'gen_ai.usage.input_tokens': final.inputTokens,
        'gen_ai.usage.output_tokens': final.outputTokens,
        'smartspace.cost_usdc': formatUsdc(cost),
        'smartspace.outcome': status,
      });
      if (errorCode) failSpan(span, { code: errorCode });
      const settling = settle({
        call: { ...call, model: p.model },
        admission: reserved,
        usage: final,
        cost,
        status,
        errorCode,
        startedAt,
      })
        .catch((err: unknown) =>
          deps.log.error({ err, requestId: reserved.requestId }, 'settlement failed'),
        )
        .finally(() => span.end());
      if (call.settled) call.settled(settling);
      else await settling;
    }
    return fallBackFrom;
  }

  /**
   * The fallback routes this call may use, with their plans: each must be usable, allowed by
   * the policy and within its cost cap; the others are skipped.
   */
  function fallbackPlans(call: GatewayCall, rules: Rules): Array<[Plan, ModelProvider]> {
    const out: Array<[Plan, ModelProvider]> = [];
    for (const id of deps.models.fallbacks(call.model)) {
      const info = deps.models.get(id);
      if (!info) continue;
      if (rules.allowedModels && !rules.allowedModels.includes(id)) continue;
      let provider: ModelProvider;
      try {
        provider = deps.models.provider(id);
      } catch {
        continue;
      }
      const p = plan(call, info, rules);
      if (rules.maxCostPerRequest !== null && p.worst > rules.maxCostPerRequest) continue;
      out.push([p, provider]);
    }
    return out;
  }

  return {
    /** The policy rules cache, for the policies router to forget a changed policy at once. */
    policies: deps.policies,

    /** Calls holding a reservation in this process now. */
    inFlight: () => inFlight,

    /**
     * What this call could cost at worst, as its reservation would hold it (within the
     * policy's output cap), and the project's approval threshold for such a step; null when
     * the model is unknown here.
     */
    async worstCase(
      call: GatewayCall,
    ): Promise<{ worst: bigint; approvalThreshold: bigint | null } | null> {
      const info = deps.models.get(call.model);
      if (!info) return null;
      const rules = await deps.policies.rules(call.projectId);
      return {
        worst: plan(call, info, rules).worst,
        approvalThreshold: rules.approvalCostThreshold,
      };
    },

    async *stream(call: GatewayCall): AsyncGenerator<ModelEvent> {
      const info = deps.models.get(call.model);
      if (!info) throw new ModelError('model.unavailable', `Unknown model "${call.model}"`);
      const provider = deps.models.provider(call.model);
      const rules = await deps.policies.rules(call.projectId);

      if (rules.allowedModels && !rules.allowedModels.includes(call.model)) {
        await deny(
          call,
          new AppError(
            'policy.model_not_allowed',
            `This project's policy does not allow ${call.model}`,
          ),
        );
      }
      const first = plan(call, info, rules);
      if (rules.maxCostPerRequest !== null && first.worst > rules.maxCostPerRequest) {
        await deny(
          call,
          new AppError(
            'policy.cost_limit',
            `This request could cost up to ${formatUsdc(first.worst)} USDC; the policy allows ${formatUsdc(rules.maxCostPerRequest)}`,
          ),
        );
      }
      // One call for the rate limits, however many routes it takes.
      if (rules.requestsPerMinute !== null)
        await rateLimit(call, 'rpm', rules.requestsPerMinute, 1);
      if (rules.tokensPerMinute !== null) {
        await rateLimit(
          call,
          'tpm',
          rules.tokensPerMinute,
          first.inputEstimate + first.maxOutputTokens,
        );
      }

      const routes: Array<[Plan, ModelProvider]> = [
        [first, provider],
        ...fallbackPlans(call, rules),
      ];
      let failure: ModelError | null = null;
      for (const [i, [p, routeProvider]] of routes.entries()) {
        let reserved: Admission;
        try {
          reserved = await reserve(call, p.model, p.worst);
        } catch (e) {
          // A fallback the budget cannot cover leaves the call with its last real failure.
          if (failure) throw failure;
          if (e instanceof AppError) await deny(call, e);
          throw e;
        }
        const hasNext = i < routes.length - 1;
        failure = yield* attempt(call, p, routeProvider, reserved, hasNext);
        if (!failure) return;
        deps.log.warn(
          { model: p.model, next: routes[i + 1]?.[0].model, code: failure.code },
          'model call failed before its first token; trying the fallback route',
        );
      }
      if (failure) throw failure;
    },

    /**
     * A prompt's input tokens, counted by the model's upstream without running the model:
     * free and not a usage row, but the policy's allowed models apply, and it is limited at
     * the policy's requests per minute, counted apart from model calls.
     */
    async countTokens(call: TokenCountCall): Promise<number> {
      const info = deps.models.get(call.model);
      if (!info) throw new ModelError('model.unavailable', `Unknown model "${call.model}"`);
      const provider = deps.models.provider(call.model);
      const rules = await deps.policies.rules(call.projectId);
      if (rules.allowedModels && !rules.allowedModels.includes(call.model)) {
        throw new AppError(
          'policy.model_not_allowed',
          `This project's policy does not allow ${call.model}`,
        );
      }
      if (rules.requestsPerMinute !== null) {
        const keys = [`count:p:${call.projectId}`];
        if (call.keyId) keys.push(`count:k:${call.projectId}:${call.keyId}`);
        for (const key of keys) {
          const r = await deps.limiter.hit(key, rules.requestsPerMinute, 60_000, 1);
          if (!r.allowed) {
            throw new AppError(
              'rate_limited',
              "This project's requests-per-minute policy for token counting is used up; retry shortly",
              { retryAfterMs: r.retryAfterMs },
            );
          }
        }
      }
      if (!provider.countTokens) {
        throw new ModelError(
          'model.bad_request',
          `${call.model} is served by an ${info.provider} upstream, which cannot count tokens`,
        );
      }
      return provider.countTokens({
        model: call.model,
        system: call.system,
        systemCacheControl: call.systemCacheControl,
        messages: call.messages,
        tools: call.tools,
        signal: call.signal,
      });
    },

    /** Returns every budget lease with no call in flight now (before checking the books). */
    releaseLeases: () => leases.releaseIdle(),

    /** A project's budget limits changed here: its lease goes back, its limits are read again. */
    forgetBudget: (projectId: string) => leases.forget(projectId),

    /** Budget leases this instance holds (metrics). */
    leasesHeld: () => leases.held(),

    /** Stops lease upkeep and returns the leases (shutdown, after the callers stopped). */
    close: () => leases.close(),

    /**
     * For instances that died: their budget leases go back to the rows (stale heartbeat), and
     * their calls left in progress are marked failed `gateway.interrupted`, nothing charged
     * (the usage is unknown). A call from before leases also held its own reservation: its
     * holds go back. Resolves to the number of calls marked interrupted.
     */
    async sweep(staleMs = STALE_CALL_MS): Promise<number> {
      const leasesReturned = await sweepLeases(deps.db, staleMs);
      const stale = await deps.db
        .select()
        .from(apiRequests)
        .where(
          and(
            eq(apiRequests.status, 'in_progress'),
            lt(apiRequests.heartbeatAt, new Date(Date.now() - staleMs)),
          ),
        );
      let released = 0;
      for (const r of stale) {
        const holds = await deps.db
          .select()
          .from(apiRequestHolds)
          .where(eq(apiRequestHolds.requestId, r.id));
        await deps.db.transaction(async (tx) => {
          // Marked interrupted and added to the day's usage, once (another sweeper may race).
          const marked = await tx.execute(
            sql`with req as (
              update api_requests set status = 'failed', error_code = 'gateway.interrupted',
                reserved = 0, finished_at = now(), heartbeat_at = null
              where id = ${r.id} and status = 'in_progress'
              returning ${ROLLUP_COLUMNS}
            ), roll as (${rollUpFrom('req')})
            select count(*)::int as n from req`,
          );
          const row = (rowsOf<{ n: number }>(marked)[0]?.n ?? 0) > 0;
          if (!row) return;
          released++;
          await settleBudgets({ tx, bus: deps.bus, projectId: r.projectId, holds, cost: 0n });
          // Exactly what the dead call held on the balance, whatever this instance's mode.
          if (r.balanceHeld > 0n) {
            await settleBalanceHold({
              tx,
              projectId: r.projectId,
              held: r.balanceHeld,
              cost: 0n,
              reference: `charge:${r.id}`,
              metadata: {},
            });
          }
        });
      }
      if (leasesReturned > 0) {
        deps.log.info({ leases: leasesReturned }, 'returned budget leases of dead instances');
      }
      // Alerts a settlement crossed but did not live to fire.
      for (const { projectId, alert } of await catchUpAlerts(deps.db, deps.bus)) {
        await deps.onAlert?.(projectId, alert).catch(() => {});
      }
      return released;
    },
  };
}

export type Gateway = ReturnType<typeof createGateway>;
