import { TRPCError, type TrackedEnvelope, transformTRPCResponse } from '@trpc/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../db/client';
import { createEventBus, type EventBus, type StoredEvent } from '../events/bus';
import { streamTopic } from '../events/stream';
import { appRouter } from '../router';
import { createTestDatabase } from '../testing';
import { type ConnectionRegistry, createConnectionRegistry, type SocketLike } from './connections';
import {
  dataFrame,
  dataPrefix,
  directStreams,
  SocketTopicStream,
  socketStart,
  socketStreamCounts,
} from './socket-stream';
import { withSubscriptionSlot } from './subscriptions';

/** What tRPC's WebSocket adapter writes for a tracked event (respond → transform → JSON). */
function trpcFrame(
  subId: number | string,
  jsonrpc: '2.0' | undefined,
  eventId: string,
  data: unknown,
) {
  return JSON.stringify(
    transformTRPCResponse(appRouter._def._config, {
      id: subId,
      jsonrpc,
      result: { type: 'data', data: { id: eventId, data }, id: eventId },
    }),
  );
}

const event = (id: number, payload: Record<string, unknown>): StoredEvent => ({
  id,
  topic: 't',
  type: 'x',
  payload,
});

describe('spliced data frames', () => {
  const payloads: Record<string, unknown>[] = [
    { type: 'reply.delta', replyId: 'r', text: 'the quick brown fox', seq: 1 },
    { type: 'x', nested: { a: [1, 'two', null, { b: true }] }, n: -0.5e-7 },
    { type: 'unicode', text: 'héllo "quoted" \\ \n\t \u2028 emoji 🎉 </script>' },
    { type: 'empty' },
  ];
  const envelopes: [number | string, '2.0' | undefined][] = [
    [1, undefined],
    [42, '2.0'],
    ['sub "1"', undefined],
    ['ü-ñ', '2.0'],
  ];

  it('are byte for byte what tRPC writes for the same emission', () => {
    let id = 100;
    for (const payload of payloads) {
      const e = event(++id, payload);
      const out = { type: e.type, ...e.payload };
      for (const [subId, jsonrpc] of envelopes) {
        const frame = dataFrame(dataPrefix(subId, jsonrpc), e, out).toString('utf8');
        expect(frame).toBe(trpcFrame(subId, jsonrpc, String(e.id), out));
        // And decodes as the message tRPC's client expects: ids and lastEventId included.
        expect(JSON.parse(frame)).toEqual({
          id: subId,
          ...(jsonrpc ? { jsonrpc } : {}),
          result: { type: 'data', id: String(e.id), data: { id: String(e.id), data: out } },
        });
      }
    }
  });

  it('serialise once per event: equal outputs share the bytes, different ones do not', () => {
    const e = event(7, { text: 'a', n: 1 });
    const prefix = dataPrefix(1, undefined);
    const first = dataFrame(prefix, e, { type: 'x', ...e.payload });
    // Another subscriber's map gives an equal object: the same buffer goes to its socket.
    expect(dataFrame(prefix, e, { type: 'x', ...e.payload })).toBe(first);
    // A map that shapes it differently (other value, other key order, extra key) gets its own.
    const variants: unknown[] = [
      { type: 'y', ...e.payload },
      { ...e.payload, type: 'x' },
      { type: 'x', ...e.payload, extra: undefined },
      { type: 'x', ...e.payload, extra: 1 },
      e.payload,
    ];
    for (const out of variants) {
      const frame = dataFrame(prefix, e, out);
      expect(frame.toString()).toBe(trpcFrame(1, undefined, '7', out));
    }
    // A nested object equal in content but not the same object is not assumed equal.
    const a = { type: 'x', inner: { v: 1 } };
    const b = { type: 'x', inner: { v: 2 } };
    expect(dataFrame(prefix, e, a).toString()).toBe(trpcFrame(1, undefined, '7', a));
    expect(dataFrame(prefix, e, b).toString()).toBe(trpcFrame(1, undefined, '7', b));
    // Another envelope: the same event text behind its own prefix.
    expect(dataFrame(dataPrefix(2, '2.0'), e, b).toString()).toBe(trpcFrame(2, '2.0', '7', b));
  });
});

const DONE = { done: true, value: undefined } as const;

/** A socket that records frames, as ws would send them (Buffers as text). */
function fakeSocket() {
  const frames: string[] = [];
  const socket = {
    readyState: 1,
    close() {
      socket.readyState = 3;
    },
    send(data: string | Buffer) {
      frames.push(typeof data === 'string' ? data : data.toString('utf8'));
    },
    on() {},
  };
  return { socket: socket as SocketLike & { readyState: number }, frames };
}

describe('a socket subscription served directly', () => {
  let handle: DatabaseHandle;
  let bus: EventBus;
  let registry: ConnectionRegistry;
  beforeAll(async () => {
    handle = await createTestDatabase();
    bus = await createEventBus(handle);
    registry = await createConnectionRegistry(handle, {
      perUser: 100,
      subscriptionsPerConnection: 2,
      anonymousPerIp: 100,
      authTimeoutMs: 60_000,
    });
  });
  afterAll(async () => {
    await registry.close();
    await bus.close();
    await handle.close();
  });

  function connect() {
    const { socket, frames } = fakeSocket();
    const connection = registry.add({
      socket,
      ip: '127.0.0.1',
      userId: `u-${Math.random()}`,
      sessionId: null,
      expiresAt: null,
    });
    if (!connection) throw new Error('not registered');
    return { socket, frames, connection };
  }

  /**
   * What the socket handler does: send "started", then pull the stream with its start.
   * Resolves as the handler hears the end: done, or rejected with the failure; a stream that
   * did not take the start gives its first pull.
   */
  function start<T>(socket: SocketLike, subId: number, stream: AsyncGenerator<T>) {
    socket.send(JSON.stringify({ id: subId, result: { type: 'started' } }));
    let ended: (failure: unknown) => void = () => {};
    const end = new Promise<IteratorResult<T>>((resolve, reject) => {
      ended = (failure) => (failure === null ? resolve(DONE) : reject(failure));
    });
    const handed = socketStart(socket, subId, (failure) => ended(failure));
    const first = (stream.next as (start: unknown) => Promise<IteratorResult<T>>)(handed);
    return handed.taken ? end : first;
  }

  const map = (e: StoredEvent) => ({ type: e.type, ...e.payload });
  const dataOf = (frames: string[]) =>
    frames
      .map((f) => JSON.parse(f) as { id: unknown; result: { type: string; id?: string } })
      .filter((m) => m.result.type === 'data');

  it('sends every event once, in order, resuming after lastEventId with live events racing', async () => {
    const topic = `direct-${Date.now()}`;
    const before: number[] = [];
    for (let n = 0; n < 30; n++) {
      before.push((await bus.publish({ topic, type: 'x', payload: { n } })).id);
    }
    const after = before[9] as number;
    const { socket, frames, connection } = connect();
    const ac = new AbortController();
    const stream = withSubscriptionSlot(
      connection,
      streamTopic({ bus, topic, lastEventId: String(after), signal: ac.signal, map }),
    );
    const directBefore = socketStreamCounts.direct;
    const pull = start(socket, 5, stream);
    expect(socketStreamCounts.direct).toBe(directBefore + 1);
    // Live events published while the backlog is being read.
    const live = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        bus.publish({ topic, type: 'x', payload: { n: 30 + i } }),
      ),
    );
    const expected = [...before.slice(10), ...live.map((e) => e.id)].sort((a, b) => a - b);
    await expect.poll(() => dataOf(frames).length).toBe(expected.length);
    const got = dataOf(frames);
    expect(got.map((m) => Number(m.result.id))).toEqual(expected);
    expect(got.every((m) => m.id === 5)).toBe(true);
    expect(connection.subscriptions).toBe(1);

    // Stopped: the adapter aborts, then disposes the stream; nothing is sent after.
    ac.abort();
    await stream.return(undefined);
    expect(await pull).toEqual({ done: true, value: undefined });
    expect(connection.subscriptions).toBe(0);
    const count = frames.length;
    await bus.publish({ topic, type: 'x', payload: { n: 999 } });
    await new Promise((r) => setTimeout(r, 200));
    expect(frames.length).toBe(count);
  });

  it('ends with events.expired when resuming from before retention; the slot is given back', async () => {
    const topic = `expired-${Date.now()}`;
    await bus.publish({ topic, type: 'x', payload: {} });
    await bus.prune(-60_000);
    const { socket, connection } = connect();
    const stream = withSubscriptionSlot(
      connection,
      streamTopic({ bus, topic, lastEventId: '0', signal: undefined, map }),
    );
    const err = await start(socket, 1, stream).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TRPCError);
    expect((err as TRPCError).cause).toMatchObject({ code: 'events.expired' });
    expect(connection.subscriptions).toBe(0);
  });

  it('holds the per-socket cap', async () => {
    const topic = `cap-${Date.now()}`;
    const { socket, connection } = connect();
    const open = () =>
      withSubscriptionSlot(
        connection,
        streamTopic({ bus, topic, lastEventId: null, signal: undefined, map }),
      );
    const a = open();
    const b = open();
    void start(socket, 1, a);
    void start(socket, 2, b);
    await expect.poll(() => connection.subscriptions).toBe(2);
    const err = await start(socket, 3, open()).catch((e: unknown) => e);
    expect((err as TRPCError).cause).toMatchObject({ code: 'realtime.too_many_subscriptions' });
    await a.return(undefined);
    await b.return(undefined);
    expect(connection.subscriptions).toBe(0);
  });

  it('a socket that started closing gets no frames; others still do', async () => {
    const topic = `closing-${Date.now()}`;
    const one = connect();
    const two = connect();
    const s1 = withSubscriptionSlot(
      one.connection,
      streamTopic({ bus, topic, lastEventId: null, signal: undefined, map }),
    );
    const s2 = withSubscriptionSlot(
      two.connection,
      streamTopic({ bus, topic, lastEventId: null, signal: undefined, map }),
    );
    void start(one.socket, 1, s1);
    void start(two.socket, 1, s2);
    await new Promise((r) => setTimeout(r, 50));
    one.socket.close(1000, 'bye');
    const sent = one.frames.length;
    await bus.publish({ topic, type: 'x', payload: { n: 1 } });
    await expect.poll(() => dataOf(two.frames).length).toBe(1);
    expect(one.frames.length).toBe(sent);
    await s1.return(undefined);
    await s2.return(undefined);
  });

  it('streams of one topic share one bus listener; each that ends leaves it, the last removes it', async () => {
    const topic = `shared-${Date.now()}`;
    const one = connect();
    const two = connect();
    const open = (connection: typeof one.connection) =>
      withSubscriptionSlot(
        connection,
        streamTopic({ bus, topic, lastEventId: null, signal: undefined, map }),
      );
    const s1 = open(one.connection);
    const s2 = open(two.connection);
    const ends: unknown[] = [];
    const handed1 = socketStart(one.socket, 1, (failure) => ends.push(failure));
    const handed2 = socketStart(two.socket, 1, (failure) => ends.push(failure));
    void (s1.next as (start: unknown) => Promise<unknown>)(handed1);
    void (s2.next as (start: unknown) => Promise<unknown>)(handed2);
    expect(handed1.taken && handed2.taken).toBe(true);
    expect(directStreams(bus, topic)).toBe(2);
    await bus.publish({ topic, type: 'x', payload: { n: 1 } });
    await expect.poll(() => dataOf(one.frames).length + dataOf(two.frames).length).toBe(2);

    // Stopped (the handler's return() on a stop or a socket close): told once, left the topic.
    await s1.return(undefined);
    await s1.return(undefined);
    expect(ends).toEqual([null]);
    expect(one.connection.subscriptions).toBe(0);
    expect(directStreams(bus, topic)).toBe(1);
    await bus.publish({ topic, type: 'x', payload: { n: 2 } });
    await expect.poll(() => dataOf(two.frames).length).toBe(2);
    expect(dataOf(one.frames).length).toBe(1);

    await s2.return(undefined);
    expect(ends).toEqual([null, null]);
    expect(directStreams(bus, topic)).toBe(0);
    expect(two.connection.subscriptions).toBe(0);
  });

  it('a taken start is never settled through next(): the end comes through `ended`', async () => {
    const topic = `taken-${Date.now()}`;
    const { socket, connection } = connect();
    const stream = withSubscriptionSlot(
      connection,
      streamTopic({ bus, topic, lastEventId: null, signal: undefined, map }),
    );
    let ended: unknown = 'not yet';
    const handed = socketStart(socket, 3, (failure) => {
      ended = failure;
    });
    let settled = false;
    (stream.next as (start: unknown) => Promise<unknown>)(handed).then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    await new Promise((r) => setTimeout(r, 50));
    expect(handed.taken).toBe(true);
    expect(ended).toBe('not yet');
    await stream.return(undefined);
    expect(ended).toBeNull();
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
  });

  it('without an adapter start (an in-process caller), it is the plain generator', async () => {
    const topic = `plain-${Date.now()}`;
    const { frames, connection } = connect();
    const fallbackBefore = socketStreamCounts.fallback;
    const stream = withSubscriptionSlot(
      connection,
      streamTopic({ bus, topic, lastEventId: null, signal: undefined, map }),
    );
    const pull = stream.next();
    expect(socketStreamCounts.fallback).toBe(fallbackBefore + 1);
    await new Promise((r) => setTimeout(r, 50));
    const published = await bus.publish({ topic, type: 'x', payload: { n: 1 } });
    const first = await pull;
    expect((first.value as TrackedEnvelope<unknown>)[0]).toBe(String(published.id));
    expect(frames).toEqual([]);
    await stream.return(undefined);
    expect(connection.subscriptions).toBe(0);
  });

  it('a start for another socket is not taken', async () => {
    const topic = `other-${Date.now()}`;
    const one = connect();
    const two = connect();
    const stream = new SocketTopicStream({
      connection: two.connection,
      access: null,
      stream: { bus, topic, lastEventId: null, signal: undefined, map },
      fallback: () => (async function* () {})(),
    });
    const fallbackBefore = socketStreamCounts.fallback;
    expect(await stream.next(socketStart(one.socket, 1, () => {}))).toEqual({
      done: true,
      value: undefined,
    });
    expect(socketStreamCounts.fallback).toBe(fallbackBefore + 1);
    expect(one.frames).toEqual([]);
  });
});
