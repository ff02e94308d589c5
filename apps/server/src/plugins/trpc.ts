import { routerErrorShape, routerProcedures } from '@smartspace/api';
import { type AnyTRPCRouter, TRPCError, type TRPCProcedureType } from '@trpc/server';
import { fastifyRequestHandler } from '@trpc/server/adapters/fastify';
import {
  type CreateWSSContextFnOptions,
  getWSConnectionHandler,
  type WSSHandlerOptions,
} from '@trpc/server/adapters/ws';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createFastPath } from './trpc-fast';

/**
 * tRPC over HTTP and WebSocket on one prefix.
 *
 * Plain JSON queries and mutations (what httpLink/httpBatchLink send) take a direct path
 * (trpc-fast.ts) that answers as the stock handler does, which test/parity.test.ts checks
 * call for call. The stock adapter converts every request and response to the Fetch API,
 * which cost ~90% of the throughput of a raw route in `pnpm bench`. Everything else (JSONL
 * batch streaming, multipart form data) goes to the stock handler unchanged.
 *
 * Subscriptions are served over the WebSocket only. Over HTTP (tRPC's SSE transport) a stream
 * escaped every socket control (session end, token expiry, per-user caps) and held graceful
 * shutdown open, so any HTTP call of one is refused at once.
 */
export interface TrpcPluginOptions<TContext extends object> {
  /** Where tRPC is served (not `prefix`: Fastify would prefix the routes with it twice). */
  mountPath: string;
  router: AnyTRPCRouter;
  maxBatchSize: number;
  /**
   * Largest body the stock handler streams in (multipart uploads); more gets
   * PAYLOAD_TOO_LARGE before the procedure runs. JSON bodies are bounded by Fastify's bodyLimit.
   */
  maxBodySize?: number;
  createContext: (req: FastifyRequest) => TContext;
  onError: (opts: {
    error: TRPCError;
    path: string | undefined;
    ctx: TContext | undefined;
  }) => void;
  /** Omit to serve no WebSocket. */
  ws?: {
    /**
     * Called when a socket opens (with `connectionParams: null` when the client will send
     * them), so the host sees, caps and times out every socket from its first moment, even one
     * that never sends them; called again with the connectionParams: that context serves calls.
     */
    createContext: (opts: CreateWSSContextFnOptions & { ip: string }) => Promise<TContext>;
    keepAlive: { enabled: boolean; pingMs: number; pongWaitMs: number };
  };
}

const METHOD_TYPE: Record<string, TRPCProcedureType> = { GET: 'query', POST: 'mutation' };

/**
 * The signal of the context made when a socket opens. That context only registers the
 * socket (the host's createContext never waits on the signal), so it shares one signal
 * rather than holding an AbortController and a close listener per idle socket.
 */
const NEVER_ABORTED = new AbortController().signal;

function subscriptionOverHttp(mountPath: string, path: string) {
  return new TRPCError({
    code: 'METHOD_NOT_SUPPORTED',
    message: `"${path}" is a subscription: subscriptions are served over WebSocket on ${mountPath}`,
  });
}

export async function trpcPlugin<TContext extends object>(
  app: FastifyInstance,
  opts: TrpcPluginOptions<TContext>,
) {
  // Bodies reach tRPC as text; it parses JSON itself (so `__proto__` keys stay plain data).
  app.removeContentTypeParser(['application/json', 'multipart/form-data']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) =>
    done(null, body),
  );
  app.addContentTypeParser('multipart/form-data', (_req, payload, done) => done(null, payload));

  const procedures = routerProcedures(opts.router);

  const stock = (req: FastifyRequest, reply: FastifyReply, path: string) =>
    fastifyRequestHandler({
      router: opts.router,
      createContext: ({ req }) => opts.createContext(req),
      onError: ({ error, path, ctx }) => opts.onError({ error, path, ctx: ctx as TContext }),
      maxBatchSize: opts.maxBatchSize,
      ...(opts.maxBodySize !== undefined ? { maxBodySize: opts.maxBodySize } : {}),
      req,
      res: reply,
      path,
    });

  const fast = createFastPath<TContext>({
    procedures,
    errorShape: routerErrorShape(opts.router),
    onError: opts.onError,
    maxBatchSize: opts.maxBatchSize,
    subscriptionRefusal: (path) => subscriptionOverHttp(opts.mountPath, path),
  });

  app.route({
    method: ['GET', 'POST'],
    url: `${opts.mountPath}/:path`,
    handler: async (req, reply) => {
      const path = (req.params as { path: string }).path;
      const type = METHOD_TYPE[req.method];
      const query = req.query as Record<string, string | undefined>;
      const contentType = req.headers['content-type'];
      // tRPC streams (JSONL) when either header asks for it.
      const plain =
        type !== undefined &&
        req.headers['trpc-accept'] === undefined &&
        !req.headers.accept?.includes('application/jsonl') &&
        (type === 'query' || contentType?.split(';', 1)[0]?.trim() === 'application/json');
      const isBatch = query.batch === '1';
      const paths = isBatch ? path.split(',') : [path];
      // Refused before any input is read; inside a plain batch, only that call is (in the fast
      // path). The stock handler would have streamed it as SSE.
      const subscription = paths.find((p) => procedures.get(p)?.type === 'subscription');
      if (subscription !== undefined && !(plain && isBatch)) {
        reply.header('allow', '');
        const refusal = subscriptionOverHttp(opts.mountPath, subscription);
        return fast.requestError(
          reply,
          refusal,
          opts.createContext(req),
          isBatch ? undefined : subscription,
        );
      }
      if (!plain) return stock(req, reply, path);
      const raw = type === 'query' ? query.input : (req.body as string | undefined);
      return fast.serve({
        reply,
        ctx: opts.createContext(req),
        type,
        method: req.method,
        paths,
        isBatch,
        raw,
      });
    },
  });

  if (!opts.ws) return;
  // The handler never reads `wss` (Fastify owns the server); the stock plugin casts alike.
  // The client's address as Fastify sees it (TRUST_PROXY honoured), which tRPC's handler,
  // given only the raw request, cannot know.
  const ipOf = new WeakMap<FastifyRequest['raw'], string>();
  const createSocketContext = opts.ws.createContext;
  const withIp = (o: CreateWSSContextFnOptions) =>
    createSocketContext({ ...o, ip: ipOf.get(o.req) ?? o.req.socket.remoteAddress ?? 'unknown' });
  const wsOptions = {
    router: opts.router,
    createContext: withIp,
    keepAlive: opts.ws.keepAlive,
    maxBatchSize: opts.maxBatchSize,
    onError: ({ error, path, ctx }: { error: TRPCError; path?: string; ctx?: TContext }) =>
      opts.onError({ error, path, ctx }),
  };
  const onConnection = getWSConnectionHandler(
    wsOptions as unknown as WSSHandlerOptions<AnyTRPCRouter>,
  );
  app.get(opts.mountPath, { websocket: true }, (socket, req) => {
    ipOf.set(req.raw, req.ip);
    onConnection(socket, req.raw);
    // tRPC creates the context only once connectionParams arrive, which a client may never
    // send; this one (discarded) registers the socket with the host now.
    if (new URL(req.url, 'http://localhost').searchParams.get('connectionParams') !== '1') return;
    withIp({
      req: req.raw,
      res: socket,
      info: {
        accept: null,
        type: 'unknown',
        isBatchCall: false,
        calls: [],
        connectionParams: null,
        signal: NEVER_ABORTED,
        url: null,
      },
    }).catch(() => {
      // Refused over a cap: the host has closed the socket with its reason.
    });
  });
}
