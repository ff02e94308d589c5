import type { IncomingMessage } from 'node:http';
import {
  type AnyTRPCRouter,
  callTRPCProcedure,
  getTRPCErrorFromUnknown,
  isTrackedEnvelope,
  TRPCError,
  type TRPCErrorShape,
  type TRPCProcedureType,
  transformTRPCResponse,
} from '@trpc/server';
import type { CreateWSSContextFnOptions } from '@trpc/server/adapters/ws';
import { parseConnectionParamsFromUnknown } from '@trpc/server/http';
import { isObservable, observableToAsyncIterable } from '@trpc/server/observable';
import { parseTRPCMessage, type TRPCResponseMessage } from '@trpc/server/rpc';
import type { RawData, WebSocket } from 'ws';

/**
 * tRPC's WebSocket protocol, served with as little held per socket as we can.
 *
 * tRPC's own connection handler (getWSConnectionHandler) gave every socket ~20 closures, two
 * keep-alive timers, an AbortController and the upgrade request, and every subscription an
 * async frame, a promise race and disposal resources: most of the ~22 KiB of heap an idle
 * subscribed socket cost (`pnpm bench`, suite fanout). Here a socket is one small object,
 * its listeners are shared functions, keep-alive is one sweep for all sockets, and a topic
 * subscription is one object with no pending promise: its stream (packages/api,
 * realtime/socket-stream.ts) takes the socket on its first pull, writes its own data frames
 * and reports its end (SOCKET_START below). Any other iterator is pulled as tRPC pulls it.
 *
 * The frames are tRPC's, built by its own exports (parseTRPCMessage, transformTRPCResponse,
 * callTRPCProcedure) in the order its handler sends them, errors and onError calls included,
 * so @trpc/client's createWSClient (connectionParams, tracked ids and lastEventId resume,
 * PING/PONG, reconnect) is served unchanged.
 */

const WS_OPEN = 1;

/**
 * Handed to a subscription's first `next()`: a topic stream of packages/api takes it to write
 * its frames itself; any other iterator ignores it, as generators ignore a first `next` value.
 * A registered symbol, as the api package exports no module this app could import it from;
 * realtime/socket-stream.ts reads the same shape.
 */
const SOCKET_START = Symbol.for('smartspace.socket-start');

/**
 * What createContext is told of the upgrade request: its method, url and headers. Not the
 * request itself, which every socket would hold (with its socket state and header list)
 * until its connectionParams have arrived and been checked.
 */
export type UpgradeRequest = Pick<IncomingMessage, 'method' | 'url' | 'headers'>;

/** tRPC's CreateWSSContextFnOptions, with the upgrade request as above and the client's address. */
export interface SocketContextOptions {
  req: UpgradeRequest;
  res: WebSocket;
  info: CreateWSSContextFnOptions['info'];
  ip: string;
}

export interface SocketHandlerOptions<TContext> {
  router: AnyTRPCRouter;
  /** The context calls on the socket run with; see TrpcPluginOptions.ws.createContext. */
  createContext: (opts: SocketContextOptions) => Promise<TContext>;
  errorShape: (opts: {
    error: TRPCError;
    type: TRPCProcedureType | 'unknown';
    path: string | undefined;
    input: unknown;
    ctx: TContext | undefined;
  }) => TRPCErrorShape;
  onError: (opts: {
    error: TRPCError;
    path: string | undefined;
    ctx: TContext | undefined;
  }) => void;
  /** What a socket error is logged with (the socket is then terminated). */
  logSocketError: (error: unknown) => void;
  keepAlive: { enabled: boolean; pingMs: number; pongWaitMs: number };
  maxBatchSize: number;
}

/**
 * The context's `signal` never aborts. The host's createContext never waits on it, and a
 * controller per socket (with its listener) is memory every idle socket would hold.
 */
const NEVER_ABORTED = new AbortController().signal;

type ConnectionParams = CreateWSSContextFnOptions['info']['connectionParams'];

/** Whether the socket's context was made (it is then `Connection.ctx`). */
type CtxResult = { ok: true } | { ok: false; error: TRPCError };

/** Every socket whose context was made waits on this one promise rather than its own. */
const CTX_READY: Promise<CtxResult> = Promise.resolve({ ok: true });

/** One socket. */
class Connection<TContext> {
  ctx: TContext | undefined = undefined;
  /** Null until the connectionParams arrive (when the client said it sends them). */
  ctxPromise: Promise<CtxResult> | null = null;
  /** Until its context is made. */
  req: UpgradeRequest | null;
  /** Its live subscriptions, linked (a socket rarely holds more than a few). */
  subscriptions: Subscription<TContext> | null = null;
  /** Keep-alive: the sweep tick of the last message in, and of the ping sent since (or -1). */
  seen: number;
  pinged = -1;

  constructor(
    readonly socket: WebSocket,
    req: UpgradeRequest,
    readonly ip: string,
    tick: number,
  ) {
    this.req = req;
    this.seen = tick;
  }

  find(id: number | string): Subscription<TContext> | null {
    for (let s = this.subscriptions; s; s = s.sibling) if (s.id === id) return s;
    return null;
  }

  unlink(sub: Subscription<TContext>) {
    if (this.subscriptions === sub) {
      this.subscriptions = sub.sibling;
      return;
    }
    for (let s = this.subscriptions; s; s = s.sibling) {
      if (s.sibling === sub) {
        s.sibling = sub.sibling;
        return;
      }
    }
  }
}

/**
 * One live subscription; also the SocketStart its stream's first `next()` is handed (see
 * realtime/socket-stream.ts in packages/api). A stream that takes it writes its own frames and
 * reports its end to `ended`: the subscription then holds no signal, promise or frame.
 */
class Subscription<TContext> {
  /** Aborted when the subscription is stopped; dropped once a stream takes the start. */
  controller: AbortController | null = new AbortController();
  iterator: AsyncIterator<unknown> | null = null;
  /** Set by the stream that takes the start. */
  taken = false;
  /** The first pull, until the subscription loop awaits it. */
  first: Promise<Step> | null = null;
  /** Settles the pull the subscription loop waits on, when it is stopped meanwhile. */
  wake: ((step: Step) => void) | null = null;
  sibling: Subscription<TContext> | null = null;

  constructor(
    readonly conn: Connection<TContext>,
    readonly id: number | string,
    readonly jsonrpc: '2.0' | undefined,
    readonly path: string,
    readonly input: unknown,
    readonly onEnded: (sub: Subscription<TContext>, failure: unknown) => void,
  ) {}

  get [SOCKET_START](): true {
    return true;
  }

  get socket(): WebSocket {
    return this.conn.socket;
  }

  get aborted(): boolean {
    return this.controller?.signal.aborted ?? false;
  }

  /** Called once by the stream that took the start. */
  ended(failure: unknown) {
    this.onEnded(this, failure);
  }

  /** The client stopped it, or the socket closed. */
  stop() {
    if (this.taken) {
      // A taken stream ends at once (and calls `ended`); return() never rejects there.
      void this.iterator?.return?.();
      return;
    }
    this.abort();
  }

  abort() {
    const controller = this.controller;
    if (controller && !controller.signal.aborted) controller.abort();
    const wake = this.wake;
    this.wake = null;
    wake?.(STOPPED);
  }
}

const STOPPED = Symbol('stopped');
/** A pull's outcome: the iterator's result, its failure, or the subscription stopped. */
type Step = IteratorResult<unknown> | TRPCError | typeof STOPPED;

const FALLBACK_ERROR_SHAPE = {
  code: -32603,
  message: 'Internal server error',
  data: { code: 'INTERNAL_SERVER_ERROR', httpStatus: 500 },
} as unknown as TRPCErrorShape;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const isAbortError = (value: unknown) =>
  typeof value === 'object' &&
  value !== null &&
  (value as { name?: unknown }).name === 'AbortError';

/** As tRPC tells a stream from a value. */
function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return isObject(value) && Symbol.asyncIterator in value;
}

/**
 * A call's getRawInput. Returned rather than written in place: a function literal named by
 * its property is given a `name` of its own by the dev build (tsx keeps names), which cost a
 * few hundred bytes per call.
 */
function rawInput(input: unknown): () => Promise<unknown> {
  return () => Promise.resolve(input);
}

export function createSocketHandler<TContext>(opts: SocketHandlerOptions<TContext>) {
  const { router, onError } = opts;
  const config = router._def._config;
  const connections = new Map<WebSocket, Connection<TContext>>();

  // Keep-alive, for every socket at once: a socket quiet for pingMs gets "PING"; one that
  // then says nothing for pongWaitMs is terminated. Measured in sweep ticks (a tenth of the
  // shorter wait, at most a second), so each is late by at most one tick.
  const keepAlive = opts.keepAlive.enabled ? opts.keepAlive : null;
  const tickMs = keepAlive
    ? Math.max(
        10,
        Math.min(1000, Math.floor(Math.min(keepAlive.pingMs, keepAlive.pongWaitMs) / 10)),
      )
    : 0;
  const pingTicks = keepAlive ? Math.ceil(keepAlive.pingMs / tickMs) : 0;
  const pongTicks = keepAlive ? Math.ceil(keepAlive.pongWaitMs / tickMs) : 0;
  let tick = 0;
  let sweeper: NodeJS.Timeout | null = null;

  function sweep() {
    tick++;
    for (const conn of connections.values()) {
      if (conn.pinged >= 0) {
        if (tick - conn.pinged >= pongTicks) conn.socket.terminate();
      } else if (tick - conn.seen >= pingTicks) {
        conn.pinged = tick;
        if (conn.socket.readyState === WS_OPEN) conn.socket.send('PING');
      }
    }
    if (connections.size === 0 && sweeper) {
      clearInterval(sweeper);
      sweeper = null;
    }
  }

  /** onError may throw or reject; neither may escape a listener or an unawaited promise. */
  function guardOnError(
    info: { error: TRPCError; path: string | undefined; ctx: TContext | undefined },
    onFailure: (cause: unknown) => void,
  ) {
    try {
      const result = onError(info) as unknown;
      if (result instanceof Promise) result.catch(onFailure);
    } catch (cause) {
      onFailure(cause);
    }
  }

  function callOnError(conn: Connection<TContext>, error: TRPCError, path?: string) {
    guardOnError({ error, path, ctx: conn.ctx }, () => {});
  }

  /** A failure of the error handling itself; logged when onError fails too. */
  function reportInternalError(conn: Connection<TContext>, error: TRPCError, path?: string) {
    guardOnError({ error, path, ctx: conn.ctx }, () => {
      console.error('[@trpc/server/adapters/ws]', error);
    });
  }

  /** Drops replies once closing starts, as tRPC's handler does. */
  function respond(conn: Connection<TContext>, message: TRPCResponseMessage) {
    if (conn.socket.readyState !== WS_OPEN) return;
    conn.socket.send(JSON.stringify(transformTRPCResponse(config, message)));
  }

  function errorShape(
    conn: Connection<TContext>,
    error: TRPCError,
    type: TRPCProcedureType | 'unknown',
    path: string | undefined,
    input: unknown,
  ): TRPCErrorShape {
    try {
      return opts.errorShape({ error, type, path, input, ctx: conn.ctx });
    } catch (cause) {
      reportInternalError(conn, getTRPCErrorFromUnknown(cause), path);
      return FALLBACK_ERROR_SHAPE;
    }
  }

  /** A response tied to no call; one that cannot be sent becomes the fallback error. */
  function respondOrReport(conn: Connection<TContext>, build: () => TRPCResponseMessage) {
    let message: TRPCResponseMessage | null = null;
    try {
      message = build();
      respond(conn, message);
    } catch (cause) {
      reportInternalError(conn, getTRPCErrorFromUnknown(cause));
      if (message === null) return;
      try {
        respond(conn, { id: message.id, jsonrpc: message.jsonrpc, error: FALLBACK_ERROR_SHAPE });
      } catch {
        // nothing more to tell the client
      }
    }
  }

  function requestError(conn: Connection<TContext>, error: TRPCError) {
    respondOrReport(conn, () => ({
      id: null,
      error: errorShape(conn, error, 'unknown', undefined, undefined),
    }));
  }

  async function createCtx(
    conn: Connection<TContext>,
    connectionParams: () => ConnectionParams,
  ): Promise<CtxResult> {
    try {
      const req = conn.req as UpgradeRequest;
      // Inside an async function, as tRPC's handler makes it: malformed connectionParams are
      // answered a turn later, after any call that arrived in the same read.
      const ctx = await (async () =>
        opts.createContext({
          req,
          res: conn.socket,
          info: {
            connectionParams: connectionParams(),
            calls: [],
            isBatchCall: false,
            accept: null,
            type: 'unknown',
            signal: NEVER_ABORTED,
            url: null,
          },
          ip: conn.ip,
        }))();
      conn.ctx = ctx;
      conn.req = null;
      conn.ctxPromise = CTX_READY;
      return CTX_READY;
    } catch (cause) {
      conn.req = null;
      const error = getTRPCErrorFromUnknown(cause);
      callOnError(conn, error);
      requestError(conn, error);
      setImmediate(() => conn.socket.close());
      return { ok: false, error };
    }
  }

  function parseConnectionParams(data: string | Buffer): ConnectionParams {
    let msg: unknown;
    try {
      if (typeof data !== 'string') throw new Error(BINARY_REFUSED);
      msg = JSON.parse(data);
      if (!isObject(msg)) throw new Error('Message was not an object');
    } catch (cause) {
      throw new TRPCError({
        code: 'PARSE_ERROR',
        message: 'Malformed TRPCConnectionParamsMessage',
        cause,
      });
    }
    return parseConnectionParamsFromUnknown(msg.data);
  }

  function onMessage(this: WebSocket, raw: RawData, isBinary: boolean) {
    const conn = connections.get(this);
    if (!conn) return;
    conn.seen = tick;
    conn.pinged = -1;
    if (!isBinary) {
      const text = raw.toString();
      if (text === 'PONG') return;
      if (text === 'PING') {
        this.send('PONG');
        return;
      }
    }
    if (!Buffer.isBuffer(raw)) {
      const error = new TRPCError({
        code: 'UNPROCESSABLE_CONTENT',
        message: 'Unexpected WebSocket message format',
      });
      requestError(conn, error);
      return;
    }
    const data = isBinary ? raw : raw.toString('utf8');
    if (!conn.ctxPromise) {
      conn.ctxPromise = createCtx(conn, () => parseConnectionParams(data));
      return;
    }
    const ctxPromise = conn.ctxPromise;
    const messages = parseMessages(conn, data);
    for (let i = 0; i < messages.length; i++) {
      handleRequest(conn, messages[i] as Parsed, i, ctxPromise).catch((cause: unknown) =>
        reportInternalError(conn, getTRPCErrorFromUnknown(cause)),
      );
    }
  }

  type Parsed = ReturnType<typeof parseTRPCMessage>;

  function parseMessages(conn: Connection<TContext>, data: string | Buffer): Parsed[] {
    try {
      if (typeof data !== 'string') throw new Error(BINARY_REFUSED);
      const json: unknown = JSON.parse(data);
      const list = Array.isArray(json) ? json : [json];
      if (Array.isArray(json) && list.length > opts.maxBatchSize) {
        const error = new TRPCError({
          code: 'BAD_REQUEST',
          message: 'Batch call exceeds maximum size',
        });
        callOnError(conn, error);
        const shape = errorShape(conn, error, 'unknown', undefined, undefined);
        let responded = false;
        for (const item of list) {
          if (
            isObject(item) &&
            item.method !== 'subscription.stop' &&
            (typeof item.id === 'number' || typeof item.id === 'string')
          ) {
            const id = item.id;
            const jsonrpc = item.jsonrpc === '2.0' ? '2.0' : undefined;
            respondOrReport(conn, () => ({ id, jsonrpc, error: shape }));
            responded = true;
          }
        }
        if (!responded) respondOrReport(conn, () => ({ id: null, error: shape }));
        return [];
      }
      return list.map((item) => parseTRPCMessage(item, config.transformer));
    } catch (cause) {
      requestError(conn, new TRPCError({ code: 'PARSE_ERROR', cause }));
      return [];
    }
  }

  function reportError(conn: Connection<TContext>, cause: unknown, path: string): TRPCError {
    const error = getTRPCErrorFromUnknown(cause);
    callOnError(conn, error, path);
    return error;
  }

  function respondWithError(
    conn: Connection<TContext>,
    cause: unknown,
    call: { id: number | string; jsonrpc: '2.0' | undefined; path: string; input: unknown },
    type: TRPCProcedureType,
  ) {
    const error = reportError(conn, cause, call.path);
    respond(conn, {
      id: call.id,
      jsonrpc: call.jsonrpc,
      error: errorShape(conn, error, type, call.path, call.input),
    });
  }

  /**
   * A call that failed before it got going (no context, the procedure threw, a subscription
   * that returned no stream): its error, unless it only gave up because it was stopped.
   * Returns true when it was answered so.
   */
  function setupFailed(
    conn: Connection<TContext>,
    cause: unknown,
    call: { id: number | string; jsonrpc: '2.0' | undefined; path: string; input: unknown },
    type: TRPCProcedureType,
    signal: AbortSignal,
  ): boolean {
    const error = getTRPCErrorFromUnknown(cause);
    const cancelled =
      signal.aborted && error.code === 'INTERNAL_SERVER_ERROR' && isAbortError(error.cause);
    if (cancelled) return false;
    try {
      respondWithError(conn, error, call, type);
    } catch (failure) {
      reportInternalError(conn, getTRPCErrorFromUnknown(failure), call.path);
      respondOrReport(conn, () => ({
        id: call.id,
        jsonrpc: call.jsonrpc,
        error: FALLBACK_ERROR_SHAPE,
      }));
    }
    return true;
  }

  async function handleRequest(
    conn: Connection<TContext>,
    msg: Parsed,
    batchIndex: number,
    ctxResult: Promise<CtxResult>,
  ): Promise<void> {
    const { id, jsonrpc } = msg;
    if (id === null) {
      const error = new TRPCError({ code: 'PARSE_ERROR', message: '`id` is required' });
      callOnError(conn, error);
      respond(conn, {
        id,
        jsonrpc,
        error: errorShape(conn, error, 'unknown', undefined, undefined),
      });
      return;
    }
    if (msg.method === 'subscription.stop') {
      conn.find(id)?.stop();
      return;
    }
    const { path, lastEventId } = msg.params;
    let { input } = msg.params;
    const type = msg.method;
    if (lastEventId !== undefined) {
      if (isObject(input)) input = { ...input, lastEventId };
      else input ??= { lastEventId };
    }
    const call = { id, jsonrpc, path, input };
    if (type !== 'subscription') return runCall(conn, call, type, batchIndex, ctxResult);
    if (conn.find(id)) {
      const duplicate = new TRPCError({ message: `Duplicate id ${id}`, code: 'BAD_REQUEST' });
      respondWithError(conn, duplicate, call, type);
      return;
    }
    const sub = new Subscription<TContext>(conn, id, jsonrpc, path, input, subscriptionEnded);
    sub.sibling = conn.subscriptions;
    conn.subscriptions = sub;
    const signal = (sub.controller as AbortController).signal;
    let started: boolean;
    try {
      started = await startSubscription(sub, signal, batchIndex, ctxResult);
    } catch (cause) {
      release(sub);
      if (setupFailed(conn, cause, call, type, signal)) return;
      respond(conn, { id, jsonrpc, result: { type: 'stopped' } });
      return;
    }
    if (!started) {
      release(sub);
      respond(conn, { id, jsonrpc, result: { type: 'stopped' } });
      return;
    }
    // A stream that took the start reports its end to subscriptionEnded; this frame is done.
    if (sub.taken) return;
    let loop: { cause: unknown } | null = null;
    let completed = false;
    try {
      completed = await pullAll(sub);
    } catch (cause) {
      loop = { cause };
    }
    // Disposed as tRPC's handler disposes it: stopped unless it completed, then return().
    if (!completed) sub.abort();
    let disposal: { error: unknown } | null = null;
    try {
      await sub.iterator?.return?.();
    } catch (error) {
      disposal = { error };
    }
    if (loop) {
      sub.abort();
      respondWithError(conn, loop.cause, call, type);
    }
    if (disposal) {
      sub.abort();
      reportError(conn, disposal.error, path);
    }
    release(sub);
    respond(conn, { id, jsonrpc, result: { type: 'stopped' } });
  }

  /** A query or mutation. */
  async function runCall(
    conn: Connection<TContext>,
    call: { id: number | string; jsonrpc: '2.0' | undefined; path: string; input: unknown },
    type: TRPCProcedureType,
    batchIndex: number,
    ctxResult: Promise<CtxResult>,
  ) {
    const { id, jsonrpc, input } = call;
    const signal = new AbortController().signal;
    try {
      const res = await ctxResult;
      if (!res.ok) throw res.error;
      const result = await callTRPCProcedure({
        router,
        path: call.path,
        getRawInput: rawInput(input),
        ctx: conn.ctx,
        type,
        signal,
        batchIndex,
      });
      if (isAsyncIterable(result) || isObservable(result)) {
        throw new TRPCError({
          code: 'UNSUPPORTED_MEDIA_TYPE',
          message: `Cannot return an async iterable or observable from a ${type} procedure with WebSockets`,
        });
      }
      respond(conn, { id, jsonrpc, result: { type: 'data', data: result } });
    } catch (cause) {
      setupFailed(conn, cause, call, type, signal);
    }
  }

  /**
   * Runs the subscription's procedure and, the socket still open and the subscription not
   * stopped, sends "started" and hands its stream the start. False: it ended before that.
   */
  async function startSubscription(
    sub: Subscription<TContext>,
    signal: AbortSignal,
    batchIndex: number,
    ctxResult: Promise<CtxResult>,
  ): Promise<boolean> {
    const { conn, path, input } = sub;
    const res = await ctxResult;
    if (!res.ok) throw res.error;
    if (signal.aborted || conn.socket.readyState !== WS_OPEN) return false;
    const result = await callTRPCProcedure({
      router,
      path,
      getRawInput: rawInput(input),
      ctx: conn.ctx,
      type: 'subscription',
      signal,
      batchIndex,
    });
    if (!isAsyncIterable(result) && !isObservable(result)) {
      throw new TRPCError({
        message: `Subscription ${path} did not return an observable or a AsyncGenerator`,
        code: 'INTERNAL_SERVER_ERROR',
      });
    }
    if (conn.socket.readyState !== WS_OPEN) {
      sub.abort();
      if (isObservable(result)) return false;
    }
    const source = isObservable(result)
      ? observableToAsyncIterable(result, signal)
      : (result as AsyncIterable<unknown>);
    const iterator = source[Symbol.asyncIterator]();
    if (signal.aborted || conn.socket.readyState !== WS_OPEN) {
      sub.abort();
      try {
        await iterator.return?.();
      } catch (cause) {
        reportError(conn, cause, path);
      }
      return false;
    }
    sub.iterator = iterator;
    respond(conn, { id: sub.id, jsonrpc: sub.jsonrpc, result: { type: 'started' } });
    const first = pull(sub, sub);
    if (sub.taken) {
      // Stopped by return() from now on: the signal goes (the stream dropped it too).
      sub.controller = null;
      sub.wake = null;
    } else {
      sub.first = first;
    }
    return true;
  }

  /** Sends each value until the iterator is done (true) or the subscription is stopped. */
  async function pullAll(sub: Subscription<TContext>): Promise<boolean> {
    const { conn, id, jsonrpc } = sub;
    let next = sub.first as Promise<Step>;
    sub.first = null;
    for (;;) {
      const step = await next;
      if (step === STOPPED) return false;
      if (step instanceof Error) throw step;
      if (step.done) return true;
      const value = step.value;
      const result: { type: 'data'; data: unknown; id?: string } = { type: 'data', data: value };
      if (isTrackedEnvelope(value)) {
        const [eventId, data] = value;
        result.id = eventId;
        result.data = { id: eventId, data };
      }
      respond(conn, { id, jsonrpc, result } as TRPCResponseMessage);
      next = pull(sub, undefined);
    }
  }

  /** The iterator's next step, or STOPPED as soon as the subscription is stopped. */
  function pull(sub: Subscription<TContext>, arg: unknown): Promise<Step> {
    if (sub.aborted) return Promise.resolve(STOPPED);
    const iterator = sub.iterator as AsyncIterator<unknown>;
    return new Promise<Step>((resolve) => {
      sub.wake = resolve;
      const next = arg === undefined ? iterator.next() : iterator.next(arg);
      if (sub.taken) return;
      next.then(
        (step) => {
          sub.wake = null;
          resolve(step);
        },
        (cause: unknown) => {
          sub.wake = null;
          const error = getTRPCErrorFromUnknown(cause);
          if (!sub.aborted) {
            resolve(error);
            return;
          }
          // Stopped meanwhile: a failure other than the abort itself is still reported.
          if (!isAbortError(error.cause)) callOnError(sub.conn, error, sub.path);
          resolve(STOPPED);
        },
      );
    });
  }

  /** How a stream that took the start ended (its `ended`). */
  function subscriptionEnded(sub: Subscription<TContext>, failure: unknown) {
    if (failure !== null) respondWithError(sub.conn, failure, sub, 'subscription');
    release(sub);
    respond(sub.conn, { id: sub.id, jsonrpc: sub.jsonrpc, result: { type: 'stopped' } });
  }

  /** Forgets a subscription that ended; a socket that closed meanwhile stops it. */
  function release(sub: Subscription<TContext>) {
    if (sub.conn.socket.readyState !== WS_OPEN) sub.abort();
    sub.conn.unlink(sub);
    sub.iterator = null;
  }

  function onClose(this: WebSocket) {
    const conn = connections.get(this);
    if (!conn) return;
    connections.delete(this);
    let sub = conn.subscriptions;
    while (sub) {
      const sibling = sub.sibling;
      sub.stop();
      sub = sibling;
    }
  }

  function onSocketError(this: WebSocket, cause: unknown) {
    const conn = connections.get(this);
    if (conn) callOnError(conn, getTRPCErrorFromUnknown(cause));
    opts.logSocketError(cause);
    this.terminate();
  }

  return {
    /**
     * Serves tRPC on an upgraded socket. `expectParams`: the client sends connectionParams
     * first (`?connectionParams=1`), and calls wait for the context made from them.
     */
    serve(socket: WebSocket, req: IncomingMessage, ip: string, expectParams: boolean) {
      const upgrade: UpgradeRequest = { method: req.method, url: req.url, headers: req.headers };
      const conn = new Connection<TContext>(socket, upgrade, ip, tick);
      connections.set(socket, conn);
      socket.on('message', onMessage);
      socket.on('close', onClose);
      // Ours in place of the listeners already there: @fastify/websocket's holds the upgrade's
      // request and reply (its logger, headers, response) as long as the socket lives, and
      // logs and terminates as ours does.
      const previous = socket.listeners('error');
      socket.on('error', onSocketError);
      for (const listener of previous) {
        socket.removeListener('error', listener as (...args: unknown[]) => void);
      }
      if (keepAlive && !sweeper) {
        sweeper = setInterval(sweep, tickMs);
        sweeper.unref();
      }
      if (!expectParams) conn.ctxPromise = createCtx(conn, () => null);
    },

    /** Sockets served now (tests). */
    get size() {
      return connections.size;
    },

    close() {
      if (sweeper) clearInterval(sweeper);
      sweeper = null;
    },
  };
}

const BINARY_REFUSED =
  'jsonEncoder received binary data. JSON uses text frames. Use a binary encoder for binary data.';
