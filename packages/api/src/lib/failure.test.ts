import { describe, expect, it } from 'vitest';
import { ModelError } from '../ai/provider';
import { AppError } from './errors';
import { classifyFailure, WorkFailure } from './failure';
import { SHUTDOWN } from './worker';

const FALLBACK = { appCode: 'job.failed', message: 'The job failed' } as const;
const live = () => new AbortController().signal;
const aborted = (reason?: unknown) => {
  const c = new AbortController();
  c.abort(reason);
  return c.signal;
};

describe('classifyFailure', () => {
  it('an aborted signal decides, whatever was thrown', () => {
    const err = new ModelError('model.cancelled', 'cancelled');
    expect(classifyFailure(err, aborted(SHUTDOWN), FALLBACK)).toEqual({
      kind: 'shutdown',
      unexpected: false,
    });
    expect(classifyFailure(err, aborted('cancel'), FALLBACK)).toEqual({
      kind: 'cancelled',
      unexpected: false,
    });
    expect(classifyFailure(new Error('x'), aborted(), FALLBACK)).toEqual({
      kind: 'cancelled',
      unexpected: true,
    });
  });

  it('known errors keep their code and message', () => {
    for (const err of [
      new WorkFailure('job.too_long', 'Too long'),
      new AppError('budget.exceeded', 'Over budget'),
      new ModelError('model.overloaded', 'Overloaded'),
    ]) {
      const code = err instanceof WorkFailure ? err.appCode : err.code;
      expect(classifyFailure(err, live(), FALLBACK)).toEqual({
        kind: 'failed',
        appCode: code,
        message: err.message,
        unexpected: false,
      });
    }
  });

  it('anything else becomes the fallback, without its message', () => {
    expect(classifyFailure(new Error('connection refused at 10.0.0.3'), live(), FALLBACK)).toEqual({
      kind: 'failed',
      ...FALLBACK,
      unexpected: true,
    });
  });
});
