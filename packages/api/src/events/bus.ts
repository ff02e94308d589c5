import { and, eq, gt, lt, lte, max, sql } from 'drizzle-orm';
import type { DatabaseHandle, Db } from '../db/client';
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
}

/**
 * Fan-out across processes with LISTEN/NOTIFY (the notification carries id and topic; each
 * process reads the row once and hands it to its local subscribers). PGlite delivers
 * notifications within its one process, so the same code serves both.
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

  // Notifications arrive in commit order; per-topic ids are in commit order too (publishers
  // of a topic are serialised). Reading ranges (lastId, id] in a per-topic chain keeps
  // delivery ordered even though reads are asynchronous.
  function onNotify(payload: string) {
    const sep = payload.indexOf(':');
    const id = Number(payload.slice(0, sep));
    const topic = payload.slice(sep + 1);
    const state = topics.get(topic);
    if (!state || !Number.isSafeInteger(id)) return;
    state.chain = state.chain
      .then(async () => {
        if (state.lastId !== null && id <= state.lastId) return;
        const rows = await db
          .select()
          .from(events)
          .where(
            state.lastId === null
              ? eq(events.id, id)
              : and(eq(events.topic, topic), gt(events.id, state.lastId), lte(events.id, id)),
          )
          .orderBy(events.id);
        for (const row of rows) {
          state.lastId = row.id;
          const event = toStored(row);
          for (const l of state.listeners) l(event);
          opts.onDelivered?.((Date.now() - row.createdAt.getTime()) / 1000);
        }
      })
      .catch(() => {
        // A failed read leaves lastId where it was: the next notification re-reads the range.
      });
  }

  const unlisten = await handle.listen(EVENTS_CHANNEL, onNotify);

  return {
    async publish({ topic, type, payload, db: outer }) {
      const write = async (tx: Db) => {
        // Serialise publishers of one topic so ids of a topic commit in increasing order:
        // a subscriber that resumes after id N can never miss an id below N committed later.
        await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${topic}))`);
        const [row] = await tx.insert(events).values({ topic, type, payload }).returning();
        if (!row) throw new Error('insert returned no row');
        await tx.execute(sql`select pg_notify(${EVENTS_CHANNEL}, ${`${row.id}:${topic}`})`);
        return row;
      };
      const row = outer ? await write(outer) : await db.transaction(write);
      return toStored(row) as StoredEvent<typeof payload>;
    },

    async publishMany({ topic, events: list, db: outer }) {
      if (list.length === 0) return [];
      const write = async (tx: Db) => {
        await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${topic}))`);
        // Ids are drawn in the order of the rows given, so the events keep their order.
        const rows = await tx
          .insert(events)
          .values(list.map((e) => ({ topic, type: e.type, payload: e.payload })))
          .returning();
        rows.sort((a, b) => a.id - b.id);
        const payloads = rows.map((r) => `${r.id}:${topic}`);
        await tx.execute(
          sql`select pg_notify(${EVENTS_CHANNEL}, p) from unnest(${sql.param(payloads)}::text[]) with ordinality as n(p, i) order by i`,
        );
        return rows;
      };
      const rows = outer ? await write(outer) : await db.transaction(write);
      return rows.map(toStored);
    },

    listen(topic, listener) {
      let state = topics.get(topic);
      if (!state) {
        state = { listeners: new Set(), lastId: null, chain: Promise.resolve() };
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
    },
  };
}
