import type { Sql, TransactionSql } from 'postgres';
import { traceStatement, tracingEnabled } from '../lib/tracing';

/**
 * Client-side time bounds around the postgres.js pool.
 *
 * statement_timeout and connect_timeout bound what a live server and a handshake may take,
 * but they cannot help when the server stops answering: a query sent to a frozen host or
 * across a black-holed network waits as long as TCP keeps the socket (many minutes), and
 * postgres.js queues queries without limit while every connection is busy or reconnecting.
 * So each statement drizzle sends, and each transaction, waits at most `acquireMs` for one of
 * `size` permits and gets its answer within `answerMs` of being issued (checked every
 * SWEEP_MS), or fails with a `DatabaseTimeoutError` that callers classify as an outage.
 *
 * A permit is held until postgres.js settles the work, not until the caller gives up: work
 * still stuck on a dead connection keeps its permit, so new work waits here (bounded) rather
 * than queueing inside postgres.js (unbounded). Only the calls drizzle makes are bounded
 * (`unsafe`, `begin` and `savepoint` inside it); tagged-template calls pass through. With
 * `prepare`, the statements drizzle sends with parameters are also prepared (see `prepare`).
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
  /**
   * Whether the statements drizzle sends with parameters are prepared. drizzle asks
   * postgres.js for unprepared ones, and postgres.js then sends an unprepared statement with
   * parameters in two round trips: Parse and Describe first, to learn the parameters' types,
   * and Bind and Execute once they come back. Prepared, a statement is parsed once per
   * connection (those round trips, the first time) and then sent in one round trip. postgres.js
   * keeps them per connection, and connections are recycled (max_lifetime), so statements
   * built with a varying number of parameters do not pile up for long.
   */
  prepare?: boolean;
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
  /** Hands a permit back: to the longest waiter, else to the pool. Once per permit taken. */
  function release(): void {
    const next = waiting.values().next();
    if (next.done) free += 1;
    else {
      waiting.delete(next.value);
      next.value();
    }
  }
  /** A permit now if one is free: no promise, no timer (the common case, per statement). */
  function tryTake(): boolean {
    if (free === 0) return false;
    free -= 1;
    return true;
  }
  /** Waits up to `ms` for a permit (then owed back through release), or POOL_TIMEOUT. */
  function wait(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const grant = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        waiting.delete(grant);
        reject(new DatabaseTimeoutError('POOL_TIMEOUT', `no database connection free in ${ms} ms`));
      }, ms);
      waiting.add(grant);
    });
  }
  /** A permit whose release may be called more than once (transactions settle two ways). */
  const permit = (): Release => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
    };
  };
  return {
    release,
    tryTake,
    wait,
    /** Permits taken and callers waiting for one, now. */
    stats: () => ({ size, inUse: size - free, waiting: waiting.size }),
    acquire(ms: number): Promise<Release> {
      if (tryTake()) return Promise.resolve(permit());
      return wait(ms).then(permit);
    },
  };
}

/** How often the statements in flight are checked against their deadlines. */
const SWEEP_MS = 25;

interface Watched {
  deadline: number;
  ms: number;
  reject: (e: unknown) => void;
}

/**
 * Deadlines of the statements in flight (at most one per permit), checked by one timer every
 * SWEEP_MS while any is in flight, rather than a timer set and cleared per statement: a
 * statement fails with QUERY_TIMEOUT at most SWEEP_MS after its deadline.
 */
function createDeadlines() {
  const watched = new Set<Watched>();
  let timer: NodeJS.Timeout | undefined;
  function sweep(): void {
    if (watched.size === 0) {
      clearInterval(timer);
      timer = undefined;
      return;
    }
    const now = Date.now();
    for (const w of watched) {
      if (w.deadline > now) continue;
      watched.delete(w);
      w.reject(new DatabaseTimeoutError('QUERY_TIMEOUT', `no database answer in ${w.ms} ms`));
    }
  }
  return {
    /** `work`'s outcome, or a QUERY_TIMEOUT after `ms`; `work` is observed either way. */
    watch<T>(work: PromiseLike<T>, ms: number): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const w: Watched = { deadline: Date.now() + ms, ms, reject };
        watched.add(w);
        timer ??= setInterval(sweep, SWEEP_MS);
        work.then(
          (value) => {
            watched.delete(w);
            resolve(value);
          },
          (error: unknown) => {
            watched.delete(w);
            reject(error);
          },
        );
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
 * is first awaited, as the original does, and `.values()` still reaches the original. A class,
 * so a statement costs one object rather than a handful of closures.
 */
class Deferred implements PendingLike {
  private started: Promise<unknown> | undefined;
  constructor(
    private readonly query: PendingLike,
    private readonly run: (query: PendingLike) => Promise<unknown>,
  ) {}
  private start(): Promise<unknown> {
    this.started ??= this.run(this.query);
    return this.started;
  }
  values(): this {
    this.query.values();
    return this;
  }
  // biome-ignore lint/suspicious/noThenProperty: it stands in for a lazy query drizzle awaits.
  then<A = unknown, B = never>(
    onValue?: ((value: unknown) => A | PromiseLike<A>) | null,
    onError?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.start().then(onValue, onError);
  }
  catch<B = never>(onError?: ((reason: unknown) => B | PromiseLike<B>) | null) {
    return this.start().catch(onError);
  }
  finally(onFinally?: (() => void) | null) {
    return this.start().finally(onFinally);
  }
}

type Unsafe = (...args: unknown[]) => PendingLike;

/** `unsafe`'s arguments with `prepare: true` when the statement has parameters. */
function preparing(args: unknown[]): unknown[] {
  const [query, params, options] = args;
  if (!Array.isArray(params) || params.length === 0) return args;
  return [query, params, { ...(options as object | undefined), prepare: true }];
}

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
  prepare: boolean,
): TransactionSql {
  const run = (q: PendingLike) =>
    within(q, answerMs).catch((e: unknown) => {
      if (e instanceof DatabaseTimeoutError) onTimeout(e);
      throw e;
    });
  const unsafe: Unsafe = (...args) =>
    new Deferred(
      (sql.unsafe as unknown as Unsafe)(...(prepare ? preparing(args) : args)),
      tracingEnabled() ? (q) => traceStatement(args[0], run(q)) : run,
    );
  const savepoint = (...args: unknown[]) => {
    const fn = args.pop() as (inner: TransactionSql) => unknown;
    return (sql.savepoint as unknown as (...a: unknown[]) => unknown)(
      ...args,
      (inner: TransactionSql) => fn(boundScope(inner, answerMs, onTimeout, prepare)),
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
          return fn(boundScope(tx, bounds.answerMs, fail, bounds.prepare ?? false));
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
  const deadlines = createDeadlines();
  const { release } = gate;
  // The permit goes back when postgres.js settles the statement (exactly one of the two runs).
  const answer = (q: PendingLike, ms: number) => {
    q.then(release, release);
    return deadlines.watch(q, ms);
  };
  // A free permit is taken synchronously; only a wait for one costs a promise and a timer.
  const run = (q: PendingLike): Promise<unknown> => {
    if (gate.tryTake()) return answer(q, bounds.answerMs);
    const issued = Date.now();
    return gate
      .wait(bounds.acquireMs)
      .then(() => answer(q, bounds.answerMs - (Date.now() - issued)));
  };
  const unsafe: Unsafe = (...args) =>
    new Deferred(
      (sql.unsafe as unknown as Unsafe)(...(bounds.prepare ? preparing(args) : args)),
      tracingEnabled() ? (q) => traceStatement(args[0], run(q)) : run,
    );
  const begin = boundedBegin(sql, gate, bounds);
  return new Proxy(sql, {
    get(target, prop, receiver) {
      if (prop === 'unsafe') return unsafe;
      if (prop === 'begin') return begin;
      if (prop === POOL_STATS) return gate.stats;
      return Reflect.get(target, prop, receiver);
    },
  });
}

export interface PoolStats {
  size: number;
  /** Permits held: statements and transactions running. */
  inUse: number;
  /** Callers waiting for a permit. */
  waiting: number;
}

const POOL_STATS = Symbol('smartspace.poolStats');

/** The permit gate's counters of a `withBounds` client (metrics read them). */
export function poolStatsOf(sql: Sql): PoolStats {
  return (
    (sql as unknown as Record<symbol, () => PoolStats>)[POOL_STATS]?.() ?? {
      size: 0,
      inUse: 0,
      waiting: 0,
    }
  );
}
