import { TRPCError } from '@trpc/server';
import { AppError } from '../lib/errors';

/** Awaits a rejection and returns its tRPC code and app code; throws if the call succeeded. */
export async function failure(p: Promise<unknown>): Promise<{ code: string; appCode: string }> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof TRPCError)) throw e;
    const appCode = e.cause instanceof AppError ? e.cause.code : e.code;
    return { code: e.code, appCode };
  }
  throw new Error('expected the call to fail');
}
