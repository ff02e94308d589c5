import type { ServerResponse } from 'node:http';
import { routerErrorShape, routerProcedures } from '@smartspace/api';
import { type AnyTRPCRouter, TRPCError, type TRPCProcedureType } from '@trpc/server';
import { fastifyRequestHandler } from '@trpc/server/adapters/fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createFastPath } from './trpc-fast';
import { createSocketHandler, type SocketContextOptions } from './trpc-ws';

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
    createContext: (opts: SocketContextOptions) => Promise<TContext>;
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
  const createSocketContext = opts.ws.createContext;
  const sockets = createSocketHandler<TContext>({
    router: opts.router,
    createContext: createSocketContext,
    errorShape: routerErrorShape(opts.router),
    onError: ({ error, path, ctx }) => opts.onError({ error, path, ctx }),
    logSocketError: (err) => app.log.error({ err }, 'websocket error'),
    keepAlive: opts.ws.keepAlive,
    maxBatchSize: opts.maxBatchSize,
  });
  app.addHook('onClose', async () => sockets.close());
  // The upgrade's HTTP response, until the socket is handed over (see below).
  const responses = new WeakMap<FastifyRequest['raw'], ServerResponse>();
  const onUpgradeRequest = (req: FastifyRequest, reply: FastifyReply, done: () => void) => {
    if (req.ws) responses.set(req.raw, reply.raw);
    done();
  };
  app.get(opts.mountPath, { websocket: true, onRequest: onUpgradeRequest }, (socket, req) => {
    // The response, its upgrade answered, lets go of the socket (and the socket of it). The
    // handler also replaces the plugin's error listener, which holds the request and reply.
    const res = responses.get(req.raw);
    responses.delete(req.raw);
    res?.detachSocket(req.raw.socket);
    const expectParams =
      new URL(req.url, 'http://localhost').searchParams.get('connectionParams') === '1';
    sockets.serve(socket, req.raw, req.ip, expectParams);
    // Calls wait for the context made from the connectionParams, which a client may never
    // send; this one (discarded) registers the socket with the host now.
    if (!expectParams) return;
    createSocketContext({
      req: { method: req.raw.method, url: req.raw.url, headers: req.raw.headers },
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
      ip: req.ip,
    }).catch(() => {
      // Refused over a cap: the host has closed the socket with its reason.
    });
  });
}
