import type { TrackedEnvelope } from '@trpc/server';
import type { Db } from '../db/client';
import type { StoredEvent } from '../events/bus';
import { BACKLOG_PAGE, parseEventId, type TopicStreamSpec } from '../events/stream';
import { AppError } from '../lib/errors';
import { type ProjectRole, roleAtLeast } from '../modules/projects/roles';
import { toTRPCError } from '../trpc';
import { currentRole } from './access';
import type { SocketConnection, SocketLike } from './connections';

/**
 * Socket subscriptions that write their data frames themselves.
 *
 * tRPC's WebSocket adapter serves a subscription by pulling its async iterator once per event
 * (a race of promises per pull), then building and JSON.stringify-ing a response per socket,
 * which ws encodes to UTF-8 again per socket. With thousands of subscribers of one topic that
 * was ~6x the CPU of a raw broadcast. Here, once the adapter has told the client a
 * subscription started, the subscription sends each event itself, synchronously from the bus
 * listener: the event is serialised once per topic and the same bytes go to every socket whose
 * subscription has the same tRPC id; only the id prefix is per socket. The adapter keeps one
 * pending `next()`, settled when the subscription ends (with its error, if any), so errors,
 * `stopped`, stops and disconnects go through tRPC exactly as before.
 *
 * Where no adapter announced a start (in-process callers, another transport), the stream is
 * the plain generator composition, unchanged.
 */

const WS_OPEN = 1;
const STARTED_TAIL = '"result":{"type":"started"}}';

interface Start {
  socket: SocketLike;
  /** The envelope every data frame of this subscription begins with. */
  prefix: string;
}

/**
 * The "started" frame tRPC has just sent. The adapter sends it and then, in the same
 * synchronous run, takes the subscription's iterator and calls its first `next()`; so the
 * start a first `next()` finds here is its own. Cleared on the next microtask, so a start
 * nobody claims (a stream of another kind) can never be taken by a later one.
 */
let lastStart: Start | null = null;

function noteStart(socket: SocketLike, frame: string) {
  let msg: { id?: unknown; jsonrpc?: unknown };
  try {
    msg = JSON.parse(frame) as typeof msg;
  } catch {
    return;
  }
  if (typeof msg.id !== 'number' && typeof msg.id !== 'string') return;
  lastStart = { socket, prefix: dataPrefix(msg.id, msg.jsonrpc) };
  queueMicrotask(() => {
    lastStart = null;
  });
}

/** The start tRPC announced on `socket` just now, if any (taken: it serves one stream). */
function takeStart(socket: SocketLike): Start | null {
  const s = lastStart;
  if (!s || s.socket !== socket) return null;
  lastStart = null;
  return s;
}

/**
 * Notes the "started" frames tRPC sends on `socket` (registered once per socket). Frames
 * this module writes go through the same `send`, but are never "started" ones.
 */
export function observeStarts(socket: SocketLike): void {
  const send = socket.send;
  socket.send = function (this: SocketLike, data: string | Buffer, ...rest: unknown[]) {
    if (typeof data === 'string' && data.endsWith(STARTED_TAIL)) noteStart(socket, data);
    return (send as (...args: unknown[]) => void).call(this, data, ...rest);
  } as SocketLike['send'];
}

/**
 * The beginning of a data frame, as tRPC's adapter writes it: `respond({ id, jsonrpc, result })`
 * stringified, `jsonrpc` omitted when undefined, `result` = { type, data: { id, data }, id }.
 */
export function dataPrefix(id: number | string, jsonrpc: unknown): string {
  const rpc = jsonrpc === undefined ? '' : `,"jsonrpc":${JSON.stringify(jsonrpc)}`;
  return `{"id":${JSON.stringify(id)}${rpc},"result":{"type":"data","data":`;
}

/** True when JSON.stringify gives `a` and `b` the same text: same keys, in order, same values. */
function sameShallow(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b) || Array.isArray(a)) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  // Own enumerable string keys in property order: what JSON.stringify writes.
  const kx = Object.keys(x);
  const ky = Object.keys(y);
  if (kx.length !== ky.length) return false;
  for (let i = 0; i < kx.length; i++) {
    const k = kx[i] as string;
    if (k !== ky[i] || x[k] !== y[k]) return false;
  }
  return true;
}

/**
 * One event's serialisation, shared by every subscription the bus hands it to in one pass:
 * each maps the event itself (its own `map`), and reuses the text while the result is the
 * same object or has the same keys and values; and the frame bytes per envelope prefix.
 */
let memoEvent: StoredEvent | null = null;
let memoOut: unknown;
let memoInner = '';
let memoTail = '';
const memoFrames = new Map<string, Buffer>();

export function dataFrame(prefix: string, event: StoredEvent, out: unknown): Buffer {
  if (event !== memoEvent || !sameShallow(out, memoOut)) {
    memoEvent = event;
    memoOut = out;
    const id = String(event.id);
    // tracked(id, out) as the adapter sends it: { id, data } inside, then the id again.
    memoInner = JSON.stringify({ id, data: out });
    memoTail = `,"id":${JSON.stringify(id)}}}`;
    memoFrames.clear();
  }
  let frame = memoFrames.get(prefix);
  if (!frame) {
    frame = Buffer.from(prefix + memoInner + memoTail);
    memoFrames.set(prefix, frame);
  }
  return frame;
}

export interface SocketStreamSpec<T> {
  connection: SocketConnection;
  /** Ends the stream (projects.access_revoked) once the member drops below `minRole`. */
  access: { db: Db; projectId: string; userId: string; minRole: ProjectRole } | null;
  stream: TopicStreamSpec<T>;
  /** The generator composition that serves the stream when no adapter announced a start. */
  fallback: () => AsyncGenerator<TrackedEnvelope<T>, void, unknown>;
}

interface Pending<Out> {
  resolve: (r: IteratorResult<TrackedEnvelope<Out>, void>) => void;
  reject: (e: unknown) => void;
}

/** How socket subscriptions were served since start (tests check the direct path engages). */
export const socketStreamCounts = { direct: 0, fallback: 0 };

const DONE: IteratorResult<never, void> = { done: true, value: undefined };
const TEXT_FRAME = { binary: false };

/**
 * A topic subscription served over a socket: see the top of this file. Keeps the invariants
 * of the generator composition it replaces (liveTopic / withSubscriptionSlot + streamTopic):
 * the per-socket slot, the access watch and the re-check after it, live listener attached
 * before the backlog is read, backlog then live, de-duplicated by id, nothing sent once
 * access ended or the subscription was stopped.
 */
export class SocketTopicStream<Out> implements AsyncGenerator<TrackedEnvelope<Out>, void, unknown> {
  private mode: 'new' | 'fallback' | 'direct' = 'new';
  private generator: AsyncGenerator<TrackedEnvelope<Out>, void, unknown> | null = null;
  private ended = false;
  /** Why it ended, for the adapter's pending next() (null: completed). */
  private failure: unknown = null;
  private pending: Pending<Out> | null = null;
  private socket: SocketLike | null = null;
  private prefix = '';
  private last: number | null = null;
  /** Live events arriving while the backlog is replayed. */
  private queue: StoredEvent[] | null = null;
  private off: (() => void) | null = null;
  private unwatch: (() => void) | null = null;
  private slot = false;
  private readonly connection: SocketConnection;
  private access: SocketStreamSpec<Out>['access'];
  private readonly stream: TopicStreamSpec<Out>;
  /** Dropped once the mode is chosen: it holds the procedure's whole context. */
  private fallback: SocketStreamSpec<Out>['fallback'] | null;

  constructor(spec: SocketStreamSpec<Out>) {
    this.connection = spec.connection;
    this.access = spec.access;
    this.stream = spec.stream;
    this.fallback = spec.fallback;
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  next(): Promise<IteratorResult<TrackedEnvelope<Out>, void>> {
    if (this.mode === 'new') {
      const start = takeStart(this.connection.socket);
      const fallback = this.fallback as NonNullable<typeof this.fallback>;
      this.fallback = null;
      if (start) {
        this.mode = 'direct';
        socketStreamCounts.direct++;
        this.socket = start.socket;
        this.prefix = start.prefix;
        this.begin().catch((e: unknown) => this.end(e));
      } else {
        this.mode = 'fallback';
        socketStreamCounts.fallback++;
        this.generator = fallback();
      }
    }
    if (this.generator) return this.generator.next();
    // Direct: the one pull the adapter keeps waiting until the subscription ends.
    if (this.ended) return this.failure ? Promise.reject(this.failure) : Promise.resolve(DONE);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<TrackedEnvelope<Out>, void>> {
    if (this.mode === 'new') this.mode = 'fallback';
    this.fallback = null;
    if (this.generator) return this.generator.return(undefined);
    this.end(null);
    return Promise.resolve(DONE);
  }

  throw(e: unknown): Promise<IteratorResult<TrackedEnvelope<Out>, void>> {
    if (this.mode === 'new') this.mode = 'fallback';
    this.fallback = null;
    if (this.generator) return this.generator.throw(e);
    this.end(e);
    return Promise.reject(e);
  }

  private async begin() {
    const { connection, access, stream } = this;
    this.access = null;
    if (connection.subscriptions >= connection.maxSubscriptions) {
      throw new AppError(
        'realtime.too_many_subscriptions',
        `At most ${connection.maxSubscriptions} subscriptions per connection`,
      );
    }
    connection.subscriptions++;
    this.slot = true;
    this.last = parseEventId(stream.lastEventId);
    // Listening from the moment the client was told the subscription started, so an event
    // published once it knows is never missed; held back until the checks below pass.
    this.queue = [];
    this.off = stream.bus.listen(stream.topic, (e) => this.onEvent(e));
    if (access) {
      const { projectId, userId, minRole } = access;
      this.unwatch = connection.access.watch({ projectId, userId, minRole }, () => this.revoke());
      // A change committed after the procedure checked access but before the watch began was
      // announced before anyone here listened for it: look once more, now that we do.
      const role = await currentRole(access.db, projectId, userId);
      if (this.ended) return;
      if (!role || !roleAtLeast(role, minRole)) return this.revoke();
    }
    if (this.last !== null) {
      await stream.bus.assertRetained(this.last);
      for (;;) {
        if (this.stopped()) return;
        const page = await stream.bus.readAfter(stream.topic, this.last, BACKLOG_PAGE);
        for (const e of page) {
          if (this.stopped()) return;
          this.last = e.id;
          this.send(e);
        }
        if (page.length < BACKLOG_PAGE) break;
      }
    }
    if (this.stopped()) return;
    const queued = this.queue;
    this.queue = null;
    for (const e of queued) this.onEvent(e);
  }

  /** Ended here, or stopped by the client (the adapter's abort comes before its return()). */
  private stopped() {
    if (this.stream.signal?.aborted) this.end(null);
    return this.ended;
  }

  private onEvent(e: StoredEvent) {
    if (this.queue) {
      this.queue.push(e);
      return;
    }
    if (this.stopped()) return;
    if (this.last !== null && e.id <= this.last) return; // already sent from the backlog
    this.last = e.id;
    try {
      this.send(e);
    } catch (err) {
      // Thrown by `map`: this subscription ends with it; the bus goes on to the others.
      this.end(err);
    }
  }

  private send(e: StoredEvent) {
    const out = this.stream.map(e);
    if (out === null) return;
    const socket = this.socket as SocketLike;
    // As the adapter: nothing is written once the socket started closing.
    if (socket.readyState !== WS_OPEN) return;
    socket.send(dataFrame(this.prefix, e, out), TEXT_FRAME);
  }

  private revoke() {
    this.end(
      new AppError(
        'projects.access_revoked',
        'Your access to this project changed; this subscription has ended',
      ),
    );
  }

  /** Ends once: detaches, gives the slot back, settles the adapter's pending pull. */
  private end(cause: unknown) {
    if (this.ended) return;
    this.ended = true;
    this.failure = cause === null ? null : cause instanceof AppError ? toTRPCError(cause) : cause;
    this.queue = null;
    this.off?.();
    this.off = null;
    this.unwatch?.();
    this.unwatch = null;
    if (this.slot) {
      this.slot = false;
      this.connection.subscriptions--;
    }
    const p = this.pending;
    this.pending = null;
    if (!p) return;
    if (this.failure) p.reject(this.failure);
    else p.resolve(DONE);
  }
}
