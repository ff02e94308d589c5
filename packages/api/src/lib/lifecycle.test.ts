import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLifecycle } from './lifecycle';
import type { Logger } from './logger';

function recordingLog() {
  const errors: { obj: object; msg: string | undefined }[] = [];
  const log: Logger = {
    error: (obj, msg) => errors.push({ obj, msg }),
    warn() {},
    info() {},
  };
  return { log, errors };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('lifecycle', () => {
  it('closes in reverse order of deferral', async () => {
    const life = createLifecycle(recordingLog().log);
    const closed: string[] = [];
    life.defer('database', () => closed.push('database'));
    life.defer('bus', async () => {
      await new Promise((r) => setTimeout(r, 5));
      closed.push('bus');
    });
    life.defer('runner', () => closed.push('runner'));
    await life.closeAll();
    expect(closed).toEqual(['runner', 'bus', 'database']);
  });

  it('keeps closing past a failure, logs it, then rethrows the first failure', async () => {
    const { log, errors } = recordingLog();
    const life = createLifecycle(log);
    const closed: string[] = [];
    const first = new Error('bus stuck');
    life.defer('database', () => closed.push('database'));
    life.defer('bus', () => Promise.reject(first));
    life.defer('mail', () => {
      throw new Error('mail stuck');
    });
    life.defer('runner', () => closed.push('runner'));
    await expect(life.closeAll()).rejects.toThrow('mail stuck');
    expect(closed).toEqual(['runner', 'database']);
    expect(errors.map((e) => e.msg)).toEqual(['closing mail failed', 'closing bus failed']);
    expect(errors[1]?.obj).toEqual({ err: first });
  });

  it('closes each disposer once', async () => {
    const life = createLifecycle(recordingLog().log);
    const dispose = vi.fn();
    life.defer('bus', dispose);
    await life.closeAll();
    await life.closeAll();
    expect(dispose).toHaveBeenCalledTimes(1);
  });

  it('runs a job on its interval, logs its failures and stops it on close', async () => {
    vi.useFakeTimers();
    const { log, errors } = recordingLog();
    const life = createLifecycle(log);
    let calls = 0;
    life.every(1_000, 'sweep', async () => {
      calls += 1;
      if (calls === 2) throw new Error('database down');
    });
    await vi.advanceTimersByTimeAsync(3_000);
    expect(calls).toBe(3);
    expect(errors.map((e) => e.msg)).toEqual(['sweep failed']);
    await life.closeAll();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(calls).toBe(3);
  });

  it('starts no job pass once closing has begun', async () => {
    vi.useFakeTimers();
    const life = createLifecycle(recordingLog().log);
    let calls = 0;
    life.every(1_000, 'sweep', () => {
      calls += 1;
    });
    // Deferred after the job, so it is disposed first and holds the job's timer alive.
    life.defer('watcher', () => new Promise((r) => setTimeout(r, 5_000)));
    const closed = life.closeAll();
    await vi.advanceTimersByTimeAsync(5_000);
    await closed;
    expect(calls).toBe(0);
  });

  it('runs a task once, logging rather than throwing its failure', async () => {
    const { log, errors } = recordingLog();
    const life = createLifecycle(log);
    await expect(life.run('sweep', () => Promise.reject(new Error('no')))).resolves.toBe(undefined);
    await life.run('sweep', () => undefined);
    expect(errors.map((e) => e.msg)).toEqual(['sweep failed']);
  });
  it('nowAndEvery: one pass before it resolves, then one per interval until close', async () => {
    vi.useFakeTimers();
    const { log, errors } = recordingLog();
    const life = createLifecycle(log);
    let calls = 0;
    await life.nowAndEvery(1_000, 'sweep', () => {
      calls += 1;
      if (calls === 1) throw new Error('first pass failed');
    });
    expect(calls).toBe(1);
    expect(errors.map((e) => e.msg)).toEqual(['sweep failed']);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(calls).toBe(3);
    await life.closeAll();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(calls).toBe(3);
  });
});
