import type { Api } from '@smartspace/api';
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import { anthropicRoutes } from './anthropic';
import {
  anthropicErrorBody,
  CompatError,
  openaiErrorBody,
  openaiStatus,
  toCompatError,
  unexpected,
} from './errors';
import { modelRoutes } from './models';
import { openaiRoutes } from './openai';

export interface CompatPluginOptions {
  api: Api;
}

/**
 * Provider-compatible endpoints, so the Anthropic and OpenAI SDKs (and anything speaking
 * their protocols) can use SmartSpace as their base URL with a project API key. Every call
 * goes through the gateway: policy, rate limits, budgets, balance and usage rows apply.
 *
 * Registered without fastify-plugin on purpose: the error handler below then covers only
 * these routes, answering in the protocol each caller speaks.
 */
export async function compatPlugin(app: FastifyInstance, opts: CompatPluginOptions) {
  const deps = opts.api.deps;
  app.setErrorHandler((err: FastifyError & { body?: unknown }, req, reply) => {
    const e = toCompatError(err) ?? frameworkError(err) ?? unexpected(err, req.log);
    if (req.trail) req.trail.appCode = e.appCode;
    if (e.retryAfterSeconds !== undefined) reply.header('retry-after', String(e.retryAfterSeconds));
    if (speaksOpenAi(req)) return reply.status(openaiStatus(e)).send(openaiErrorBody(e));
    return reply.status(e.status).send(anthropicErrorBody(e));
  });
  anthropicRoutes(app, deps);
  openaiRoutes(app, deps);
  modelRoutes(app, deps);
}

/** OpenAI's paths, and /v1/models without Anthropic's version header. */
function speaksOpenAi(req: FastifyRequest): boolean {
  if (req.url.startsWith('/v1/chat/')) return true;
  return req.url.startsWith('/v1/models') && req.headers['anthropic-version'] === undefined;
}

/** Refusals by Fastify before the handler: unreadable JSON, too large, wrong type, throttled. */
function frameworkError(err: FastifyError): CompatError | null {
  const status = err.statusCode;
  if (!status || status < 400 || status >= 500) return null;
  if (status === 413) {
    return new CompatError(413, 'request_too_large', 'request_too_large', 'Request body too large');
  }
  if (status === 429) {
    return new CompatError(429, 'rate_limit_error', 'rate_limited', err.message);
  }
  const message =
    status === 415
      ? 'Send the body as application/json'
      : err.code?.startsWith('FST_ERR_CTP_')
        ? 'The request body is not a valid JSON object'
        : err.message;
  return new CompatError(status, 'invalid_request_error', 'bad_request', message);
}
