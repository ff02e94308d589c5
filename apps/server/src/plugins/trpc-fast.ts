import type { ErrorShapeOptions, RouterProcedure } from '@smartspace/api';
import {
  getTRPCErrorFromUnknown,
  TRPCError,
  type TRPCErrorShape,
  type TRPCProcedureType,
} from '@trpc/server';
import { getHTTPStatusCode } from '@trpc/server/http';
import type { TRPCResponse } from '@trpc/server/rpc';
import type { FastifyReply } from 'fastify';

/**
 * Plain JSON queries and mutations (what httpLink and httpBatchLink send), answered as tRPC's
 * own HTTP handler answers them, check for check and in the same order (test/parity.test.ts
 * holds the two side by side), without its conversion of every request and response to the
 * Fetch API. Subscriptions are the one deliberate difference: refused, call by call.
 */
export interface FastPathOptions<TContext> {
  procedures: ReadonlyMap<string, RouterProcedure>;
  errorShape: (opts: ErrorShapeOptions) => TRPCErrorShape;
  onError: (opts: { error: TRPCError; path: string | undefined; ctx: TContext }) => void;
  maxBatchSize: number;
  subscriptionRefusal: (path: string) => TRPCError;
}

export interface PlainCall<TContext> {
  reply: FastifyReply;
  ctx: TContext;
  /** From the HTTP method. */
  type: TRPCProcedureType;
  method: string;
  paths: string[];
  isBatch: boolean;
  /** The input as JSON text: the query's `input` or the body. */
  raw: string | undefined;
}

/** What tRPC's handler varies on (the stream and SSE forms of a call). */
export const VARY = 'trpc-accept, accept';

/** As bytes: Fastify would label a string `application/json; charset=utf-8`, tRPC does not. */
const json = (body: unknown) => Buffer.from(JSON.stringify(body));

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The inputs of the calls, or the error each call that reads its input meets (as tRPC's). */
function parseInputs(raw: string | undefined, isBatch: boolean): [TRPCError | null, unknown] {
  if (!raw) return [null, undefined];
  let inputs: unknown;
  try {
    inputs = JSON.parse(raw);
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : 'Invalid input';
    return [new TRPCError({ code: 'BAD_REQUEST', message, cause }), undefined];
  }
  if (isBatch && !isObject(inputs)) {
    const message = '"input" needs to be an object when doing a batch call';
    return [new TRPCError({ code: 'BAD_REQUEST', message }), undefined];
  }
  return [null, inputs];
}

export function createFastPath<TContext>(opts: FastPathOptions<TContext>) {
  const { procedures, errorShape, onError } = opts;

  /** One error for a whole request that cannot be split into calls. */
  function requestError(reply: FastifyReply, cause: unknown, ctx: TContext, path?: string) {
    const error = getTRPCErrorFromUnknown(cause);
    onError({ error, path, ctx });
    const shape = errorShape({ error, type: 'unknown', path, input: undefined, ctx });
    return reply
      .status(getHTTPStatusCode({ error: shape }, [error]))
      .header('content-type', 'application/json')
      .header('vary', VARY)
      .send(json({ error: shape }));
  }

  /** tRPC refuses these before running any call. */
  function batchRefusal(paths: string[], isBatch: boolean): TRPCError | null {
    if (isBatch && paths.length > opts.maxBatchSize) {
      return new TRPCError({ code: 'BAD_REQUEST', message: 'Batch call exceeds maximum size' });
    }
    let first: TRPCProcedureType | undefined;
    for (const p of paths) {
      const type = procedures.get(p)?.type;
      // A subscription is refused on its own, below.
      if (type === undefined || type === 'subscription') continue;
      if (first === undefined) first = type;
      else if (type !== first) {
        const message = `Cannot mix procedure types in call: ${first}, ${type}`;
        return new TRPCError({ code: 'BAD_REQUEST', message });
      }
    }
    return null;
  }

  /** One call of the request; its error is kept for the status, as tRPC's handler keeps it. */
  async function runOne(
    call: PlainCall<TContext>,
    index: number,
    [inputError, inputs]: [TRPCError | null, unknown],
    errors: (TRPCError | undefined)[],
  ): Promise<TRPCResponse> {
    const { reply, ctx, type } = call;
    const path = call.paths[index] as string;
    const input = call.isBatch ? (inputs as Record<string, unknown> | undefined)?.[index] : inputs;
    const proc = procedures.get(path);
    try {
      if (!proc) {
        throw new TRPCError({ code: 'NOT_FOUND', message: `No procedure found on path "${path}"` });
      }
      if (proc.type === 'subscription') {
        reply.header('allow', '');
        throw opts.subscriptionRefusal(path);
      }
      if (proc.type !== type) {
        reply.header('allow', proc.type === 'query' ? 'GET' : 'POST');
        throw new TRPCError({
          code: 'METHOD_NOT_SUPPORTED',
          message: `Unsupported ${call.method}-request to ${proc.type} procedure at path "${path}"`,
        });
      }
      const data = await proc.call({
        path,
        getRawInput: async () => {
          if (inputError) throw inputError;
          return input;
        },
        ctx,
        type,
        signal: undefined,
        batchIndex: index,
      });
      return { result: { data } };
    } catch (cause) {
      const error = getTRPCErrorFromUnknown(cause);
      errors[index] = error;
      onError({ error, path, ctx });
      const shape = errorShape({ error, type: proc?.type ?? 'unknown', path, input, ctx });
      return { error: shape };
    }
  }

  async function serve(call: PlainCall<TContext>) {
    const { reply, ctx, isBatch } = call;
    const refusal = batchRefusal(call.paths, isBatch);
    if (refusal) return requestError(reply, refusal, ctx);
    const inputs = parseInputs(call.raw, isBatch);
    const errors: (TRPCError | undefined)[] = [];
    const responses = await Promise.all(
      call.paths.map((_, index) => runOne(call, index, inputs, errors)),
    );
    reply
      .status(getHTTPStatusCode(responses, errors))
      .header('content-type', 'application/json')
      .header('vary', VARY);
    return reply.send(json(isBatch ? responses : responses[0]));
  }

  return { serve, requestError };
}
