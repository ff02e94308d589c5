import { DrizzleQueryError } from 'drizzle-orm/errors';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { DatabaseTimeoutError } from '../db/bounds';
import { AppError } from './errors';
import { isServiceUnavailable, retryWhileUnavailable, serviceUnavailable } from './unavailable';

/**
 * The one classification of outages. The driver's real failures are
 * produced in db/bounds.test.ts; here, the codes a test cannot easily provoke (a server
 * shutting down, a failover), as the driver and drizzle deliver them.
 */
const serverError = (code: string) =>
  new DrizzleQueryError(
    'select 1',
    [],
    new postgres.PostgresError({ code, message: code } as never),
  );
const socketError = (code: string) =>
  Object.assign(new Error(`connect ${code} 10.0.0.1:5432`), { code, syscall: 'connect' });

describe('isServiceUnavailable', () => {
  it.each([
    '57P01', // admin_shutdown
    '57P02', // crash_shutdown
    '57P03', // cannot_connect_now
    '53300', // too_many_connections
    '25006', // read_only_sql_transaction: a write reached a standby during a failover
    '57014', // query_canceled: statement_timeout
    '08006', // connection_failure
    '08001', // sqlclient_unable_to_establish_sqlconnection
  ])('server error %s, wrapped by drizzle: unavailable', (code) => {
    expect(isServiceUnavailable(serverError(code))).toBe(true);
  });

  it.each([
    '23505', // unique_violation
    '42P01', // undefined_table: a bug
    '22P02', // invalid_text_representation: bad input
    '40001', // serialization_failure
  ])('server error %s: not an outage', (code) => {
    expect(isServiceUnavailable(serverError(code))).toBe(false);
  });

  it.each(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN'])(
    'socket error %s, bare or in an AggregateError: unavailable',
    (code) => {
      expect(isServiceUnavailable(new DrizzleQueryError('q', [], socketError(code)))).toBe(true);
      const both = new AggregateError([socketError(code), socketError(code)], 'connect failed');
      expect(isServiceUnavailable(both)).toBe(true);
    },
  );

  it('our own client-side timeouts: unavailable', () => {
    for (const code of ['POOL_TIMEOUT', 'QUERY_TIMEOUT'] as const) {
      expect(isServiceUnavailable(new DatabaseTimeoutError(code, 'late'))).toBe(true);
    }
  });

  it('app errors, plain errors, non-errors and cycles: not outages', () => {
    const cyclic = new Error('a') as Error & { cause?: unknown };
    cyclic.cause = cyclic;
    for (const e of [
      new AppError('chat.reply_in_progress', 'busy'),
      new Error('boom'),
      Object.assign(new Error('ended'), { code: 'CONNECTION_ENDED' }),
      cyclic,
      'ECONNREFUSED',
      null,
      undefined,
    ]) {
      expect(isServiceUnavailable(e)).toBe(false);
    }
  });

  it('serviceUnavailable: a generic message for clients, the original kept for logs', () => {
    const original = serverError('57P01');
    const error = serviceUnavailable(original);
    expect(error).toMatchObject({ code: 'service.unavailable', cause: original });
    expect(error.message).not.toMatch(/57P01|select/);
  });
});

describe('retryWhileUnavailable', () => {
  it('retries through an outage and returns what the work returns once it succeeds', async () => {
    let calls = 0;
    const retries: number[] = [];
    const result = await retryWhileUnavailable(
      async () => {
        calls++;
        if (calls < 3) throw socketError('ECONNREFUSED');
        return 'stored';
      },
      { withinMs: 5_000, onRetry: (_e, attempt) => retries.push(attempt) },
    );
    expect({ result, calls, retries }).toEqual({ result: 'stored', calls: 3, retries: [1, 2] });
  });

  it('does not retry a failure that is not an outage', async () => {
    let calls = 0;
    const bug = new Error('boom');
    await expect(
      retryWhileUnavailable(
        async () => {
          calls++;
          throw bug;
        },
        { withinMs: 5_000 },
      ),
    ).rejects.toBe(bug);
    expect(calls).toBe(1);
  });

  it('gives up when the time is spent, throwing the last failure', async () => {
    let calls = 0;
    const started = Date.now();
    const outage = serverError('57P03');
    await expect(
      retryWhileUnavailable(
        async () => {
          calls++;
          throw outage;
        },
        { withinMs: 600 },
      ),
    ).rejects.toBe(outage);
    // 250 ms, then 500 ms would pass the deadline: two tries, well before a third pause.
    expect(calls).toBe(2);
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
