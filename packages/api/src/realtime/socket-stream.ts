import type { TrackedEnvelope } from '@trpc/server';
import type { Db } from '../db/client';
import type { EventBus, StoredEvent } from '../events/bus';
import { BACKLOG_PAGE, parseEventId, type TopicStreamSpec } from '../events/stream';
import { AppError } from '../lib/errors';
import { type ProjectRole, roleAtLeast } from '../modules/projects/roles';
import { toTRPCError } from '../trpc';
import { type AccessWatcher, currentRole } from './access';
import type { SocketConnection, SocketLike } from './connections';

/**
 * Socket subscriptions that write their data frames themselves.
 *
 * tRPC's WebSocket adapter served a subscription by pulling its async iterator once per event
 * (a race of promises per pull), then building and JSON.stringify-ing a response per socket,
 * which ws encodes to UTF-8 again per socket. With thousands of subscribers of one topic that
 * was ~6x the CPU of a raw broadcast. Here, once the server's socket handler has told the
 * client a subscription started, it hands the stream a SocketStart on its first `next()`; the
 * stream takes it and sends each event itself, synchronously from the bus listener: the event
 * is serialised once per topic and the same bytes go to every socket whose subscription has
 * the same tRPC id; only the id prefix is per socket. It tells the handler how it ended
 * (`ended`), so errors, `stopped`, stops and disconnects go through the handler exactly as
 * for any other subscription, and an idle subscription holds no pending promise.
 *
 * Without a start (in-process callers, another transport), the stream is the plain generator
 * composition, unchanged.
 */

const WS_OPEN = 1;

/**
 * Marks a SocketStart. A registered symbol: the socket handler (apps/server,
 * plugins/trpc-ws.ts) cannot import this module, and any other iterator ignores the value.
 */
export const SOCKET_START: unique symbol = Symbol.for('smartspace.socket-start') as never;

/**
 * What the socket handler passes to a subscription's first `next()`, having just sent
 * "started" for tRPC id `id` on `socket`.
 */
export interface SocketStart {
  readonly [SOCKET_START]: true;
  readonly socket: SocketLike;
  readonly id: number | string;
  readonly jsonrpc: '2.0' | undefined;
  /**
   * Set by the stream that takes the start. From then on it writes its own frames, that
   * `next()` never settles, and `ended` is called once instead.
   */
  taken: boolean;
  /**
   * How a taken stream ended: null when it completed or was returned (stopped), else its
   * error (an app error as its tRPC error), which the handler sends.
   */
  ended(failure: unknown): void;
}

/** A SocketStart from plain values (tests; the handler builds its own). */
export function socketStart(
  socket: SocketLike,
  id: number | string,
  ended: (failure: unknown) => void,
  jsonrpc?: '2.0',
): SocketStart {
  return { [SOCKET_START]: true, socket, id, jsonrpc, taken: false, ended };
}

function isSocketStart(value: unknown): value is SocketStart {
  return (
    typeof value === 'object' && value !== null && (value as SocketStart)[SOCKET_START] === true
  );
}

/**
 * Envelope prefixes of small numeric ids (what createWSClient sends: 1, 2, ...), shared by
 * every socket rather than a string per subscription.
 */
const sharedPrefixes = new Map<string, string>();
const SHARED_PREFIX_MAX_ID = 4096;

function prefixFor(id: number | string, jsonrpc: unknown): string {
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > SHARED_PREFIX_MAX_ID) {
    return dataPrefix(id, jsonrpc);
  }
  const key = jsonrpc === undefined ? String(id) : `${id}:2`;
  let prefix = sharedPrefixes.get(key);
  if (prefix === undefined) {
    prefix = dataPrefix(id, jsonrpc);
    sharedPrefixes.set(key, prefix);
  }
  return prefix;
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
  /** The generator composition that serves the stream when no handler passed a start. */
  fallback: () => AsyncGenerator<TrackedEnvelope<T>, void, unknown>;
}

/** How socket subscriptions were served since start (tests check the direct path engages). */
export const socketStreamCounts = { direct: 0, fallback: 0 };

const DONE: IteratorResult<never, void> = { done: true, value: undefined };
const TEXT_FRAME = { binary: false };
/** What a taken stream's `next()` returns: it never settles (the handler hears `ended`). */
const NEVER = new Promise<never>(() => {});

/**
 * The direct streams of one bus topic share one bus listener: per stream that is a Set
 * entry, where a listener of its own was two closures and their scopes held while idle.
 */
interface TopicFanout {
  streams: Set<SocketTopicStream<unknown>>;
  off: () => void;
}
const fanouts = new WeakMap<EventBus, Map<string, TopicFanout>>();

function joinTopic(stream: SocketTopicStream<unknown>, bus: EventBus, topic: string) {
  let byTopic = fanouts.get(bus);
  if (!byTopic) {
    byTopic = new Map();
    fanouts.set(bus, byTopic);
  }
  let fanout = byTopic.get(topic);
  if (!fanout) {
    const streams = new Set<SocketTopicStream<unknown>>();
    const off = bus.listen(topic, (e) => {
      for (const s of streams) s.onEvent(e);
    });
    fanout = { streams, off };
    byTopic.set(topic, fanout);
  }
  fanout.streams.add(stream);
}

function leaveTopic(stream: SocketTopicStream<unknown>, bus: EventBus, topic: string) {
  const byTopic = fanouts.get(bus);
  const fanout = byTopic?.get(topic);
  if (!byTopic || !fanout?.streams.delete(stream) || fanout.streams.size > 0) return;
  byTopic.delete(topic);
  fanout.off();
}

/** Direct streams of `topic` on `bus` now, all behind its one shared listener (tests). */
export function directStreams(bus: EventBus, topic: string): number {
  return fanouts.get(bus)?.get(topic)?.streams.size ?? 0;
}

/** A direct stream's access grant, watched without a closure of its own. */
class StreamGrant implements AccessWatcher {
  constructor(
    readonly stream: SocketTopicStream<unknown>,
    readonly projectId: string,
    readonly userId: string,
    readonly minRole: ProjectRole,
  ) {}

  onRevoked() {
    this.stream.revoke();
  }
}

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
  /** The handler's start, told how the stream ended; null once told. */
  private owner: SocketStart | null = null;
  private prefix = '';
  private last: number | null = null;
  /** Live events arriving while the backlog is replayed. */
  private queue: StoredEvent[] | null = null;
  private joined = false;
  private grant: StreamGrant | null = null;
  private slot = false;
  private readonly connection: SocketConnection;
  private access: SocketStreamSpec<Out>['access'];
  private readonly bus: EventBus;
  private readonly topic: string;
  private readonly map: (event: StoredEvent) => Out | null;
  /** Read once, when the stream begins. */
  private lastEventId: string | null | undefined;
  /** Dropped once the mode is chosen: they hold the procedure's whole context. */
  private fallback: SocketStreamSpec<Out>['fallback'] | null;
  private signal: AbortSignal | undefined;

  constructor(spec: SocketStreamSpec<Out>) {
    this.connection = spec.connection;
    this.access = spec.access;
    this.bus = spec.stream.bus;
    this.topic = spec.stream.topic;
    this.map = spec.stream.map;
    this.lastEventId = spec.stream.lastEventId;
    this.signal = spec.stream.signal;
    this.fallback = spec.fallback;
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  /** `start`: the socket handler's SocketStart, on the first pull only. */
  next(start?: unknown): Promise<IteratorResult<TrackedEnvelope<Out>, void>> {
    if (this.mode === 'new') {
      const fallback = this.fallback as NonNullable<typeof this.fallback>;
      this.fallback = null;
      // A start for another socket (never sent by the handler) is not ours to write to.
      if (isSocketStart(start) && start.socket === this.connection.socket) {
        this.mode = 'direct';
        socketStreamCounts.direct++;
        start.taken = true;
        this.owner = start;
        this.prefix = prefixFor(start.id, start.jsonrpc);
        // Stopped by return() from here on, which the handler calls at once: the signal
        // (the costliest object an idle subscription would hold) is not needed.
        this.signal = undefined;
        this.begin().catch((e: unknown) => this.end(e));
        return NEVER;
      }
      this.mode = 'fallback';
      this.signal = undefined;
      socketStreamCounts.fallback++;
      this.generator = fallback();
    }
    if (this.generator) return this.generator.next();
    return NEVER;
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
    const { connection, access } = this;
    this.access = null;
    if (connection.subscriptions >= connection.maxSubscriptions) {
      throw new AppError(
        'realtime.too_many_subscriptions',
        `At most ${connection.maxSubscriptions} subscriptions per connection`,
      );
    }
    connection.subscriptions++;
    this.slot = true;
    this.last = parseEventId(this.lastEventId);
    this.lastEventId = undefined;
    // Listening from the moment the client was told the subscription started, so an event
    // published once it knows is never missed; held back until the checks below pass.
    this.queue = [];
    joinTopic(this as SocketTopicStream<unknown>, this.bus, this.topic);
    this.joined = true;
    if (access) {
      const { projectId, userId, minRole } = access;
      this.grant = new StreamGrant(this as SocketTopicStream<unknown>, projectId, userId, minRole);
      connection.access.add(this.grant);
      // A change committed after the procedure checked access but before the watch began was
      // announced before anyone here listened for it: look once more, now that we do.
      const role = await currentRole(access.db, projectId, userId);
      if (this.ended) return;
      if (!role || !roleAtLeast(role, minRole)) return this.revoke();
    }
    if (this.last !== null) {
      await this.bus.assertRetained(this.last);
      for (;;) {
        if (this.ended) return;
        const page = await this.bus.readAfter(this.topic, this.last, BACKLOG_PAGE);
        for (const e of page) {
          if (this.ended) return;
          this.last = e.id;
          this.send(e);
        }
        if (page.length < BACKLOG_PAGE) break;
      }
    }
    if (this.ended) return;
    const queued = this.queue;
    this.queue = null;
    for (const e of queued) this.onEvent(e);
  }

  /** An event of its topic, from the bus (through the topic's shared listener). */
  onEvent(e: StoredEvent) {
    if (this.queue) {
      this.queue.push(e);
      return;
    }
    if (this.ended) return;
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
    const out = this.map(e);
    if (out === null) return;
    const socket = this.connection.socket;
    // As the adapter: nothing is written once the socket started closing.
    if (socket.readyState !== WS_OPEN) return;
    socket.send(dataFrame(this.prefix, e, out), TEXT_FRAME);
  }

  /** Its member's access no longer allows it (the access watch, or the re-check). */
  revoke() {
    this.end(
      new AppError(
        'projects.access_revoked',
        'Your access to this project changed; this subscription has ended',
      ),
    );
  }

  /** Ends once: detaches, gives the slot back, tells the handler. */
  private end(cause: unknown) {
    if (this.ended) return;
    this.ended = true;
    const failure = cause === null ? null : cause instanceof AppError ? toTRPCError(cause) : cause;
    this.queue = null;
    if (this.joined) {
      this.joined = false;
      leaveTopic(this as SocketTopicStream<unknown>, this.bus, this.topic);
    }
    if (this.grant) {
      this.connection.access.delete(this.grant);
      this.grant = null;
    }
    if (this.slot) {
      this.slot = false;
      this.connection.subscriptions--;
    }
    const owner = this.owner;
    this.owner = null;
    owner?.ended(failure);
  }
}
