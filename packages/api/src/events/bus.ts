import { and, eq, gt, gte, lt, lte, max, type SQL, sql } from 'drizzle-orm';
import { type DatabaseHandle, type Db, rowsOf } from '../db/client';
import { AppError } from '../lib/errors';
import { eventRetention, events } from './events.table';

export interface StoredEvent<T = Record<string, unknown>> {
  id: number;
  topic: string;
  type: string;
  payload: T;
}

type Listener = (event: StoredEvent) => void;

export interface EventBus {
  /**
   * Stores the event and publishes it (NOTIFY in the same transaction: delivered on commit).
   * Pass `db` to publish inside a caller's transaction.
   */
  publish<T extends Record<string, unknown>>(opts: {
    topic: string;
    type: string;
    payload: T;
    db?: Db;
  }): Promise<StoredEvent<T>>;
  /**
   * Several events of one topic, in order, as one write: one lock, one INSERT, one statement
   * of NOTIFYs. Same guarantees as publishing them one by one in the same transaction.
   */
  publishMany(opts: {
    topic: string;
    events: ReadonlyArray<{ type: string; payload: Record<string, unknown> }>;
    db?: Db;
  }): Promise<StoredEvent[]>;
  /**
   * Events of one topic stored in a single statement that commits on its own (no
   * transaction: one round trip) with `guard`, a data-modifying query returning at most one
   * row (an UPDATE ... RETURNING), and `also`, writes that read the guard's row as `g`
   * (`where exists (select 1 from g)`): the events are stored only when the guard returns its
   * row. Returns that row as JSON (column names as returned), or null: then nothing of the
   * events was stored. Same order and delivery guarantees as publishMany.
   */
  publishGuarded(opts: {
    topic: string;
    events: ReadonlyArray<{ type: string; payload: Record<string, unknown> }>;
    guard: SQL;
    also?: SQL[];
  }): Promise<Record<string, unknown> | null>;
  /** Calls `listener` for each event of `topic` published from now on, in id order. */
  listen(topic: string, listener: Listener): () => void;
  /** Stored events of `topic` after `afterId`, oldest first. */
  readAfter(topic: string, afterId: number, limit: number): Promise<StoredEvent[]>;
  /** Throws `events.expired` when events after `afterId` may have been pruned. */
  assertRetained(afterId: number): Promise<void>;
  /** Deletes events older than `olderThanMs`; returns how many. */
  prune(olderThanMs: number): Promise<number>;
  close(): Promise<void>;
}

export const EVENTS_CHANNEL = 'smartspace_events';

interface TopicState {
  listeners: Set<Listener>;
  lastId: number | null;
  chain: Promise<void>;
  /** Ids notified and not yet taken by a delivery, in arrival (commit) order. */
  notified: number[];
}

/**
 * An event this process published, kept until its notification comes back: its row need not
 * be read. `prev` is the topic's id before it as its write saw it: a listener that delivered
 * exactly `prev` has everything before it. A write that could not see the latest event yet
 * (one statement takes its snapshot before the lock) has a smaller `prev`: its listeners then
 * read, as for any event they did not publish.
 */
interface Published {
  event: StoredEvent;
  prev: number;
  /** Its row's created_at (ms). */
  at: number;
  /** Length of its payload's JSON: what keeping it costs. */
  size: number;
}

/** A stored event's id, its created_at (ms) and the topic's id before it. */
type Inserted = { id: number | string | bigint; at: number | string; prev: unknown };

/**
 * Published events kept for their notification, at most this many and this much JSON: those
 * of rolled back writes (never notified) age out, and while notifications are lost the oldest
 * go first (their listeners read them).
 */
const MAX_PUBLISHED = 2_000;
const MAX_PUBLISHED_BYTES = 8 * 1024 * 1024;

/**
 * Fan-out across processes with LISTEN/NOTIFY (the notification carries id and topic; each
 * process reads the row once and hands it to its local subscribers, or, for events it
 * published itself, hands them over without reading). PGlite delivers notifications within
 * its one process, so the same code serves both.
 */
export async function createEventBus(
  handle: DatabaseHandle,
  opts: {
    /**
     * Told, per event handed to this instance's listeners, the seconds since it was published
     * (its row's created_at, the publishing transaction's start): publish → delivery lag.
     */
    onDelivered?: ((lagSeconds: number) => void) | undefined;
  } = {},
): Promise<EventBus> {
  const { db } = handle;
  const topics = new Map<string, TopicState>();

  function toStored(row: typeof events.$inferSelect): StoredEvent {
    return {
      id: row.id,
      topic: row.topic,
      type: row.type,
      payload: row.payload as Record<string, unknown>,
    };
  }

  const published = new Map<number, Published>();
  let publishedBytes = 0;
  const forget = (id: number) => {
    const p = published.get(id);
    if (!p) return;
    publishedBytes -= p.size;
    published.delete(id);
  };

  /**
   * The events `ids` (in order) from `published`, if they follow `after` without a gap
   * (`after` null: the first delivery, which starts wherever it starts); null otherwise.
   */
  function fromPublished(after: number | null, ids: number[]): Published[] | null {
    const out: Published[] = [];
    let last = after;
    for (const id of ids) {
      const p = published.get(id);
      if (!p || (last !== null && p.prev !== last)) return null;
      out.push(p);
      last = id;
    }
    return out;
  }

  function deliver(state: TopicState, event: StoredEvent, at: number) {
    state.lastId = event.id;
    for (const l of state.listeners) l(event);
    opts.onDelivered?.((Date.now() - at) / 1000);
  }

  // Notifications arrive in commit order; per-topic ids are in commit order too (publishers
  // of a topic are serialised). Reading ranges (lastId, id] in a per-topic chain keeps
  // delivery ordered even though reads are asynchronous. Notifications that arrive while a
  // delivery waits its turn join it: the events of one transaction (told together) cost one
  // read, and none when this process published them and they follow what was delivered.
  function onNotify(payload: string) {
    const sep = payload.indexOf(':');
    const id = Number(payload.slice(0, sep));
    const topic = payload.slice(sep + 1);
    const state = topics.get(topic);
    if (!state || !Number.isSafeInteger(id) || (state.lastId !== null && id <= state.lastId)) {
      forget(id);
      return;
    }
    state.notified.push(id);
    if (state.notified.length > 1) return;
    state.chain = state.chain
      .then(async () => {
        const ids = state.notified.filter((n) => state.lastId === null || n > state.lastId);
        state.notified = [];
        const known = fromPublished(state.lastId, ids);
        for (const n of ids) forget(n);
        if (known) {
          for (const p of known) deliver(state, p.event, p.at);
          return;
        }
        const from = ids[0];
        const upTo = ids.at(-1);
        if (from === undefined || upTo === undefined) return;
        const rows = await db
          .select()
          .from(events)
          .where(
            and(
              eq(events.topic, topic),
              state.lastId === null ? gte(events.id, from) : gt(events.id, state.lastId),
              lte(events.id, upTo),
            ),
          )
          .orderBy(events.id);
        for (const row of rows) deliver(state, toStored(row), row.createdAt.getTime());
      })
      .catch(() => {
        // A failed read leaves lastId where it was: the next notification re-reads the range.
      });
  }

  const unlisten = await handle.listen(EVENTS_CHANNEL, onNotify);

  /**
   * Stores `list` in `tx` and queues a NOTIFY per event, ids in list order: the topic's lock
   * and the INSERT (whose rows carry their NOTIFY, in id order) are sent together, one round
   * trip. Pipelined, they still run one after the other: the lock is held before any id is
   * drawn.
   */
  async function write(
    tx: Db,
    topic: string,
    list: ReadonlyArray<{ type: string; payload: Record<string, unknown> }>,
  ): Promise<StoredEvent[]> {
    const types = list.map((e) => e.type);
    const payloads = list.map((e) => JSON.stringify(e.payload));
    const [, inserted] = await Promise.all([
      // Serialise publishers of one topic so ids of a topic commit in increasing order:
      // a subscriber that resumes after id N can never miss an id below N committed later.
      tx.execute(sql`select pg_advisory_xact_lock(hashtext(${topic}))`),
      // Ids are drawn in the order of the rows given (ordinality), so the events keep their
      // order; pg_notify runs above the sort, so notifications go out in id order too.
      // `prev`: the topic's last id before these (seen after the lock: none comes between).
      tx.execute(sql`with ins as (
          insert into ${events} (topic, type, payload)
          select ${topic}, u.t, u.p::jsonb
          from unnest(${sql.param(types)}::text[], ${sql.param(payloads)}::text[])
            with ordinality as u(t, p, i)
          order by u.i
          returning id, created_at)
        select id, (extract(epoch from created_at) * 1000)::float8 as at,
          (select max(e.id) from ${events} e where e.topic = ${topic}) as prev,
          pg_notify(${EVENTS_CHANNEL}, id || ':' || ${topic})
        from ins order by id`),
    ]);
    return remember(topic, types, payloads, rowsOf<Inserted>(inserted), list);
  }

  /**
   * Stores `list` in a single statement that commits on its own (one round trip, no
   * transaction): the topic's lock is joined to the INSERT's rows, so it is held before any
   * id is drawn, until the statement commits. With `guard` (CTEs, the first named `g`), the
   * lock is only taken, and the events only stored, when `g` returns a row, returned as
   * `guard` (null: nothing was stored).
   */
  async function writeAlone(
    topic: string,
    list: ReadonlyArray<{ type: string; payload: Record<string, unknown> }>,
    guard?: SQL[],
  ): Promise<{ stored: StoredEvent[]; guard: Record<string, unknown> | null }> {
    const types = list.map((e) => e.type);
    const payloads = list.map((e) => JSON.stringify(e.payload));
    const lock = sql`pg_advisory_xact_lock(hashtext(${topic}))`;
    const ctes = guard
      ? [...guard, sql`l as (select ${lock} from (select 1 from g limit 1) x)`]
      : [sql`l as (select ${lock})`];
    const result = await db.execute(sql`with ${sql.join(ctes, sql`, `)},
        ins as (
          insert into ${events} (topic, type, payload)
          select ${topic}, u.t, u.p::jsonb
          from l, unnest(${sql.param(types)}::text[], ${sql.param(payloads)}::text[])
            with ordinality as u(t, p, i)
          order by u.i
          returning id, created_at)
        select ${guard ? sql`(select row_to_json(g) from g limit 1)` : sql`null::json`} as guard,
          id, (extract(epoch from created_at) * 1000)::float8 as at,
          (select max(e.id) from ${events} e where e.topic = ${topic}) as prev,
          pg_notify(${EVENTS_CHANNEL}, id || ':' || ${topic})
        from ins order by id`);
    const rows = rowsOf<Inserted & { guard: Record<string, unknown> | null }>(result);
    // A guard that returned nothing: nothing was stored.
    if (guard && rows.length === 0) return { stored: [], guard: null };
    return { stored: remember(topic, types, payloads, rows, list), guard: rows[0]?.guard ?? null };
  }

  /** The events stored, kept for their notifications when this process listens to `topic`. */
  function remember(
    topic: string,
    types: string[],
    payloads: string[],
    rows: Inserted[],
    list: ReadonlyArray<{ type: string; payload: Record<string, unknown> }>,
  ): StoredEvent[] {
    if (rows.length !== list.length) throw new Error('insert returned too few rows');
    const stored = list.map((e, i) => ({
      id: Number(rows[i]?.id),
      topic,
      type: e.type,
      payload: e.payload,
    }));
    if (topics.has(topic)) {
      // Listened to here: kept for the notification, so its listeners need not read the rows.
      // Parsed back from the JSON stored, so they get what a read would give (no Dates, no
      // undefined), not the caller's object.
      let prev = rows[0]?.prev === null ? 0 : Number(rows[0]?.prev);
      for (const [i, { id }] of stored.entries()) {
        const json = payloads[i] ?? '{}';
        const event = { id, topic, type: types[i] ?? '', payload: JSON.parse(json) };
        published.set(id, { event, prev, at: Number(rows[i]?.at), size: json.length });
        publishedBytes += json.length;
        prev = id;
      }
      for (const id of published.keys()) {
        if (published.size <= MAX_PUBLISHED && publishedBytes <= MAX_PUBLISHED_BYTES) break;
        forget(id);
      }
    }
    return stored;
  }

  return {
    async publishGuarded({ topic, events: list, guard, also = [] }) {
      const ctes = [
        sql`g as (${guard})`,
        ...also.map((a, i) => sql`${sql.raw(`a${i}`)} as (${a})`),
      ];
      if (list.length === 0) {
        const result = await db.execute(
          sql`with ${sql.join(ctes, sql`, `)} select row_to_json(g) as guard from g limit 1`,
        );
        return rowsOf<{ guard: Record<string, unknown> }>(result)[0]?.guard ?? null;
      }
      return (await writeAlone(topic, list, ctes)).guard;
    },

    async publish({ topic, type, payload, db: outer }) {
      const list = [{ type, payload }];
      const [stored] = outer
        ? await write(outer, topic, list)
        : (await writeAlone(topic, list)).stored;
      if (!stored) throw new Error('insert returned no row');
      return stored as StoredEvent<typeof payload>;
    },

    async publishMany({ topic, events: list, db: outer }) {
      if (list.length === 0) return [];
      return outer ? write(outer, topic, list) : (await writeAlone(topic, list)).stored;
    },

    listen(topic, listener) {
      let state = topics.get(topic);
      if (!state) {
        state = {
          listeners: new Set(),
          lastId: null,
          chain: Promise.resolve(),
          notified: [],
        };
        topics.set(topic, state);
      }
      state.listeners.add(listener);
      const s = state;
      return () => {
        s.listeners.delete(listener);
        if (s.listeners.size === 0 && topics.get(topic) === s) topics.delete(topic);
      };
    },

    async readAfter(topic, afterId, limit) {
      const rows = await db
        .select()
        .from(events)
        .where(and(eq(events.topic, topic), gt(events.id, afterId)))
        .orderBy(events.id)
        .limit(limit);
      return rows.map(toStored);
    },

    async assertRetained(afterId) {
      const [row] = await db.select().from(eventRetention).where(eq(eventRetention.id, 1));
      if (row && afterId < row.prunedThrough) {
        throw new AppError(
          'events.expired',
          'Events after that id are past retention; reload and subscribe without lastEventId',
        );
      }
    },

    async prune(olderThanMs) {
      return db.transaction(async (tx) => {
        const cutoff = new Date(Date.now() - olderThanMs);
        const [top] = await tx
          .select({ id: max(events.id) })
          .from(events)
          .where(lt(events.createdAt, cutoff));
        if (!top?.id) return 0;
        const deleted = await tx
          .delete(events)
          .where(lte(events.id, top.id))
          .returning({ id: events.id });
        await tx
          .insert(eventRetention)
          .values({ id: 1, prunedThrough: top.id })
          .onConflictDoUpdate({
            target: eventRetention.id,
            set: { prunedThrough: sql`greatest(${eventRetention.prunedThrough}, ${top.id})` },
          });
        return deleted.length;
      });
    },

    async close() {
      await unlisten();
      topics.clear();
      published.clear();
      publishedBytes = 0;
    },
  };
}
