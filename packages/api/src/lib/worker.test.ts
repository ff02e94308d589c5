import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing';
import type { Logger } from './logger';
import { createWorker, isShutdown, type WorkerOptions } from './worker';

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});

afterAll(async () => {
  await database.close();
});

function options(channel: string) {
  const errors: { obj: object; msg: string | undefined }[] = [];
  const log: Logger = { error: (obj, msg) => errors.push({ obj, msg }), warn() {}, info() {} };
  const opts: WorkerOptions = {
    db: database.db,
    log,
    cancelChannel: channel,
    idField: 'jobId',
    crashMessage: 'job crashed',
  };
  return { opts, errors };
}

/** A job that waits for its signal and reports why it stopped. */
function untilAborted(stopped: (shutdown: boolean) => void) {
  return (signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      signal.addEventListener('abort', () => {
        stopped(isShutdown(signal));
        resolve();
      });
    });
}

describe('worker', () => {
  it('a cancel reaches the job in another worker through NOTIFY, as a cancel', async () => {
    const { opts } = options('worker_test_cancel');
    const owner = await createWorker(database, opts);
    const other = await createWorker(database, opts);
    const outcome = new Promise<boolean>((resolve) => owner.start('a', untilAborted(resolve)));
    expect(owner.size).toBe(1);
    await other.cancel('a');
    expect(await outcome).toBe(false);
    await owner.close();
    await other.close();
    expect(owner.size).toBe(0);
  });

  it('close aborts jobs as a shutdown and waits for them, then runs their follow-up', async () => {
    const { opts } = options('worker_test_close');
    const worker = await createWorker(database, opts);
    const seen: string[] = [];
    worker.start(
      'a',
      async (signal) => {
        await untilAborted((shutdown) => seen.push(shutdown ? 'shutdown' : 'cancel'))(signal);
        await new Promise((r) => setTimeout(r, 20));
        seen.push('stored');
      },
      () => seen.push('after'),
    );
    await worker.close();
    expect(seen).toEqual(['shutdown', 'stored', 'after']);
    expect(worker.size).toBe(0);
  });

  it('sweep skips jobs running here and counts what settle handled', async () => {
    const { opts } = options('worker_test_sweep');
    const worker = await createWorker(database, opts);
    worker.start(
      'here',
      untilAborted(() => {}),
    );
    const settled: string[] = [];
    const n = await worker.sweep([{ id: 'here' }, { id: 'gone' }, { id: 'raced' }], async (r) => {
      settled.push(r.id);
      return r.id !== 'raced';
    });
    expect(settled).toEqual(['gone', 'raced']);
    expect(n).toBe(1);
    await worker.close();
  });

  it('a job that throws is logged under its id and leaves the in-flight map', async () => {
    const { opts, errors } = options('worker_test_crash');
    const worker = await createWorker(database, opts);
    const after = new Promise<void>((resolve) =>
      worker.start('boom', () => Promise.reject(new Error('boom')), resolve),
    );
    await after;
    expect(errors).toEqual([
      { obj: { err: expect.any(Error), jobId: 'boom' }, msg: 'job crashed' },
    ]);
    expect(worker.size).toBe(0);
    await worker.close();
  });
});
