import type { Sql, TransactionSql } from 'postgres';

/**
 * Client-side time bounds around the postgres.js pool.
 *
 * statement_timeout and connect_timeout bound what a live server and a handshake may take,
 * but they cannot help when the server stops answering: a query sent to a frozen host or
 * across a black-holed network waits as long as TCP keeps the socket (many minutes), and
 * postgres.js queues queries without limit while every connection is busy or reconnecting.
 * So each statement drizzle sends, and each transaction, waits at most `acquireMs` for one of
 * `size` permits and gets its answer within `answerMs` of being issued, or fails with a
 * `DatabaseTimeoutError` that callers classify as an outage.
 *
 * A permit is held until postgres.js settles the work, not until the caller gives up: work
 * still stuck on a dead connection keeps its permit, so new work waits here (bounded) rather
 * than queueing inside postgres.js (unbounded). Only the calls drizzle makes are bounded
 * (`unsafe`, `begin` and `savepoint` inside it); tagged-template calls pass through.
 */
export interface Bounds {
  /** Statements and transactions in flight at once: the pool size. */
  size: number;
  /** Longest wait for a permit; less than `answerMs`. */
  acquireMs: number;
  /**
   * Longest wait for a statement's answer (or a transaction's start) from the moment it is
   * issued: the wait for a permit and for connecting included.
   */
  answerMs: number;
}

export class DatabaseTimeoutError extends Error {
  override name = 'DatabaseTimeoutError';
  constructor(
    /** POOL_TIMEOUT: no connection was free in time; QUERY_TIMEOUT: the server did not answer. */
    readonly code: 'POOL_TIMEOUT' | 'QUERY_TIMEOUT',
    message: string,
  ) {
    super(message);
  }
}

type Release = () => void;

/** A counting semaphore whose waiters give up after a deadline. */
function createGate(size: number) {
  let free = size;
  const waiting = new Set<() => void>();
  const release = () => {
    const next = waiting.values().next();
    if (next.done) free += 1;
    else {
      waiting.delete(next.value);
      next.value();
    }
  };
  const permit = (): Release => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
    };
  };
  return {
    acquire(ms: number): Promise<Release> {
      if (free > 0) {
        free -= 1;
        return Promise.resolve(permit());
      }
      return new Promise((resolve, reject) => {
        const grant = () => {
          clearTimeout(timer);
          resolve(permit());
        };
        const timer = setTimeout(() => {
          waiting.delete(grant);
          reject(
            new DatabaseTimeoutError('POOL_TIMEOUT', `no database connection free in ${ms} ms`),
          );
        }, ms);
        waiting.add(grant);
      });
    },
  };
}

/** `work`'s outcome, or a QUERY_TIMEOUT after `ms`; `work` is observed either way. */
export function within<T>(work: PromiseLike<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new DatabaseTimeoutError('QUERY_TIMEOUT', `no database answer in ${ms} ms`)),
      ms,
    );
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** The subset of a postgres.js query that drizzle uses: `.values()`, then awaits it. */
interface PendingLike {
  values(): PendingLike;
  then: PromiseLike<unknown>['then'];
}

/**
 * Stands in for the lazy query postgres.js returns: the query starts (through `run`) when it
 * is first awaited, as the original does, and `.values()` still reaches the original.
 */
function deferred(query: PendingLike, run: (query: PendingLike) => Promise<unknown>) {
  let started: Promise<unknown> | undefined;
  const start = () => {
    started ??= run(query);
    return started;
  };
  const stand: PendingLike & Pick<Promise<unknown>, 'catch' | 'finally'> = {
    values() {
      query.values();
      return stand;
    },
    // biome-ignore lint/suspicious/noThenProperty: it stands in for a lazy query drizzle awaits.
    then: (onValue, onError) => start().then(onValue, onError),
    catch: (onError) => start().catch(onError),
    finally: (onFinally) => start().finally(onFinally),
  };
  return stand;
}

type Unsafe = (...args: unknown[]) => PendingLike;

/**
 * Inside a transaction the connection is already held: statements are bounded by
 * `answerMs` only, and the first one that times out fails the whole transaction at once
 * (`onTimeout`), since postgres.js would otherwise wait for a rollback the dead connection
 * will never answer.
 */
function boundScope(
  sql: TransactionSql,
  answerMs: number,
  onTimeout: (e: unknown) => void,
): TransactionSql {
  const unsafe: Unsafe = (...args) =>
    deferred((sql.unsafe as unknown as Unsafe)(...args), (q) =>
      within(q, answerMs).catch((e: unknown) => {
        if (e instanceof DatabaseTimeoutError) onTimeout(e);
        throw e;
      }),
    );
  const savepoint = (...args: unknown[]) => {
    const fn = args.pop() as (inner: TransactionSql) => unknown;
    return (sql.savepoint as unknown as (...a: unknown[]) => unknown)(
      ...args,
      (inner: TransactionSql) => fn(boundScope(inner, answerMs, onTimeout)),
    );
  };
  return new Proxy(sql, {
    get(target, prop, receiver) {
      if (prop === 'unsafe') return unsafe;
      if (prop === 'savepoint') return savepoint;
      return Reflect.get(target, prop, receiver);
    },
  });
}

/** A transaction: a permit for its whole life; its start and each statement are bounded. */
function boundedBegin(sql: Sql, gate: ReturnType<typeof createGate>, bounds: Bounds) {
  return async (...args: unknown[]) => {
    const fn = args.pop() as (tx: TransactionSql) => unknown;
    const issued = Date.now();
    const release = await gate.acquire(bounds.acquireMs);
    return new Promise((resolve, reject) => {
      let failed = false;
      const fail = (e: unknown) => {
        failed = true;
        clearTimeout(notStarted);
        reject(e);
      };
      const notStarted = setTimeout(
        () => {
          const message = `transaction not started in ${bounds.answerMs} ms`;
          fail(new DatabaseTimeoutError('QUERY_TIMEOUT', message));
        },
        bounds.answerMs - (Date.now() - issued),
      );
      const work = (sql.begin as unknown as (...a: unknown[]) => Promise<unknown>)(
        ...args,
        (tx: TransactionSql) => {
          clearTimeout(notStarted);
          // The caller was already told it failed: run nothing late.
          if (failed) throw new DatabaseTimeoutError('QUERY_TIMEOUT', 'transaction started late');
          return fn(boundScope(tx, bounds.answerMs, fail));
        },
      );
      work.then(
        (value) => {
          clearTimeout(notStarted);
          resolve(value);
        },
        (e: unknown) => {
          if (!failed) fail(e);
        },
      );
      work.then(release, release);
    });
  };
}

/** `sql` with every statement and transaction drizzle runs through it bounded in time. */
export function withBounds(sql: Sql, bounds: Bounds): Sql {
  const gate = createGate(bounds.size);
  const unsafe: Unsafe = (...args) =>
    deferred((sql.unsafe as unknown as Unsafe)(...args), async (q) => {
      const issued = Date.now();
      const release = await gate.acquire(bounds.acquireMs);
      q.then(release, release);
      return within(q, bounds.answerMs - (Date.now() - issued));
    });
  const begin = boundedBegin(sql, gate, bounds);
  return new Proxy(sql, {
    get(target, prop, receiver) {
      if (prop === 'unsafe') return unsafe;
      if (prop === 'begin') return begin;
      return Reflect.get(target, prop, receiver);
    },
  });
}
