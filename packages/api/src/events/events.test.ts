import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../db/client';
import { createTestDatabase } from '../testing';
import { createEventBus, type EventBus } from './bus';
import { events } from './events.table';
import { streamTopic } from './stream';

let handle: DatabaseHandle;
let bus: EventBus;
beforeAll(async () => {
  handle = await createTestDatabase();
  bus = await createEventBus(handle);
});
afterAll(async () => {
  await bus.close();
  await handle.close();
});

async function take<T>(it: AsyncGenerator<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) {
    out.push(x);
    if (out.length === n) break;
  }
  return out;
}

// tracked() events are [id, data] pairs on the server side.
const ids = (xs: unknown[]) => xs.map((x) => (x as [string, unknown])[0]);
const datas = (xs: unknown[]) => xs.map((x) => (x as [string, { n: number }])[1].n);

describe('event bus', () => {
  it('publishes many events of a topic as one write, in order, each delivered once', async () => {
    const seen: number[] = [];
    const off = bus.listen('t-many', (e) => seen.push(e.payload.n as number));
    await bus.publish({ topic: 't-many', type: 'x', payload: { n: 0 } });
    const many = await bus.publishMany({
      topic: 't-many',
      events: Array.from({ length: 30 }, (_, i) => ({ type: 'x', payload: { n: i + 1 } })),
    });
    await bus.publish({ topic: 't-many', type: 'x', payload: { n: 31 } });
    expect(many.map((e) => e.payload.n)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    for (let i = 1; i < many.length; i++) {
      expect(many[i]?.id).toBeGreaterThan(many[i - 1]?.id ?? Number.POSITIVE_INFINITY);
    }
    await expect.poll(() => seen.length).toBe(32);
    expect(seen).toEqual([...Array(32).keys()]);
    off();
    const stored = await bus.readAfter('t-many', 0, 100);
    expect(stored.map((e) => e.payload.n)).toEqual([...Array(32).keys()]);
    expect(await bus.publishMany({ topic: 't-many', events: [] })).toEqual([]);
  });

  it("delivers its own events, another instance's and none of a rolled back write, in order, once each", async () => {
    const other = await createEventBus(handle);
    const topic = 't-mixed';
    const here: number[] = [];
    const there: number[] = [];
    const offHere = bus.listen(topic, (e) => here.push(e.payload.n as number));
    const offThere = other.listen(topic, (e) => there.push(e.payload.n as number));
    const one = (b: EventBus, n: number) => b.publish({ topic, type: 'x', payload: { n } });
    const many = (b: EventBus, ns: number[]) =>
      b.publishMany({ topic, events: ns.map((n) => ({ type: 'x', payload: { n } })) });
    await one(bus, 0);
    await one(other, 1);
    await many(bus, [2, 3]);
    const rolledBack = handle.db.transaction(async (tx) => {
      await bus.publish({ topic, type: 'x', payload: { n: -1 }, db: tx });
      throw new Error('rolled back');
    });
    await expect(rolledBack).rejects.toThrow('rolled back');
    await one(bus, 4);
    await many(other, [5, 6]);
    await one(bus, 7);
    const all = [...Array(8).keys()];
    await expect.poll(() => here.length).toBe(8);
    await expect.poll(() => there.length).toBe(8);
    expect(here).toEqual(all);
    expect(there).toEqual(all);
    offHere();
    offThere();
    await other.close();
  });

  it('publishes with a guard in one statement: stored only when the guard returns its row', async () => {
    const topic = 't-guarded';
    const seen: number[] = [];
    const off = bus.listen(topic, (e) => seen.push(e.payload.n as number));
    const [anchor] = await bus.publishMany({ topic, events: [{ type: 'x', payload: { n: 0 } }] });
    // A data-modifying guard, as a run's UPDATE of its own row is: here, a no-op UPDATE of a
    // row that exists, or of none.
    const touch = (id: number) =>
      sql`update ${events} set type = type where id = ${id} returning id, 'kept' as note`;
    const list = (ns: number[]) => ns.map((n) => ({ type: 'x', payload: { n } }));
    expect(await bus.publishGuarded({ topic, events: list([-1, -2]), guard: touch(-1) })).toBe(
      null,
    );
    const row = await bus.publishGuarded({
      topic,
      events: list([1, 2]),
      guard: touch(anchor?.id ?? -1),
    });
    expect(row).toEqual({ id: anchor?.id, note: 'kept' });
    expect(await bus.publishGuarded({ topic, events: [], guard: touch(-1) })).toBe(null);
    await expect.poll(() => seen).toEqual([0, 1, 2]);
    off();
    const stored = await bus.readAfter(topic, 0, 100);
    expect(stored.map((e) => e.payload.n)).toEqual([0, 1, 2]);
  });

  it('stores with increasing ids and delivers live events in order', async () => {
    const seen: number[] = [];
    const off = bus.listen('t-live', (e) => seen.push(e.payload.n as number));
    for (let n = 0; n < 20; n++) await bus.publish({ topic: 't-live', type: 'x', payload: { n } });
    await expect.poll(() => seen.length).toBe(20);
    expect(seen).toEqual([...Array(20).keys()]);
    off();
    const stored = await bus.readAfter('t-live', 0, 100);
    expect(stored.map((e) => e.payload.n)).toEqual([...Array(20).keys()]);
    expect(stored.every((e, i) => i === 0 || e.id > (stored[i - 1]?.id ?? 0))).toBe(true);
  });

  it('concurrent publishers of one topic still deliver in id order', async () => {
    const seen: number[] = [];
    const off = bus.listen('t-conc', (e) => seen.push(e.id));
    await Promise.all(
      Array.from({ length: 30 }, (_, n) =>
        bus.publish({ topic: 't-conc', type: 'x', payload: { n } }),
      ),
    );
    await expect.poll(() => seen.length).toBe(30);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
    off();
  });

  it('topics are isolated', async () => {
    const seen: string[] = [];
    const off = bus.listen('t-a', (e) => seen.push(e.topic));
    await bus.publish({ topic: 't-b', type: 'x', payload: {} });
    await bus.publish({ topic: 't-a', type: 'x', payload: {} });
    await expect.poll(() => seen.length).toBe(1);
    expect(seen).toEqual(['t-a']);
    off();
  });
});

describe('streamTopic', () => {
  it('resumes after lastEventId: backlog then live, nothing missed or repeated', async () => {
    const first = [];
    for (let n = 0; n < 5; n++)
      first.push(await bus.publish({ topic: 't-resume', type: 'x', payload: { n } }));
    const ac = new AbortController();
    const stream = streamTopic({
      bus,
      topic: 't-resume',
      lastEventId: String(first[1]?.id),
      signal: ac.signal,
      map: (e) => e.payload,
    });
    const got = take(stream, 6);
    // Published while the backlog is being read: must appear once, after the backlog.
    await bus.publish({ topic: 't-resume', type: 'x', payload: { n: 5 } });
    await bus.publish({ topic: 't-resume', type: 'x', payload: { n: 6 } });
    await bus.publish({ topic: 't-resume', type: 'x', payload: { n: 7 } });
    const events = await got;
    expect(datas(events)).toEqual([2, 3, 4, 5, 6, 7]);
    expect(new Set(ids(events)).size).toBe(6);
    ac.abort();
  });

  it('ends when the signal aborts', async () => {
    const ac = new AbortController();
    const stream = streamTopic({ bus, topic: 't-abort', signal: ac.signal, map: (e) => e.payload });
    const done = (async () => {
      for await (const _ of stream) {
        // nothing is published
      }
      return 'ended';
    })();
    setTimeout(() => ac.abort(), 50);
    expect(await done).toBe('ended');
  });

  it('refuses a malformed lastEventId and one older than retention', async () => {
    const bad = streamTopic({
      bus,
      topic: 't',
      lastEventId: 'abc',
      signal: undefined,
      map: (e) => e,
    });
    await expect(bad.next()).rejects.toMatchObject({ code: 'events.invalid_id' });
    const old = await bus.publish({ topic: 't-prune', type: 'x', payload: {} });
    await bus.publish({ topic: 't-prune', type: 'x', payload: {} });
    expect(await bus.prune(-1000)).toBeGreaterThanOrEqual(2);
    const expired = streamTopic({
      bus,
      topic: 't-prune',
      lastEventId: String(old.id),
      signal: undefined,
      map: (e) => e,
    });
    await expect(expired.next()).rejects.toMatchObject({ code: 'events.expired' });
  });
});
