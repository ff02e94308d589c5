import {
  type AnyTRPCRouter,
  getTRPCErrorShape,
  type TRPCError,
  type TRPCErrorShape,
  type TRPCProcedureType,
} from '@trpc/server';
import type { ProcedureMeta } from '../trpc';

/**
 * The one place that reads tRPC's router internals (`_def`). tRPC v11 exports no way to list
 * a router's procedures with their type, input parsers and meta, nor the config that holds
 * its error formatter, and both the API reference and the HTTP fast path need them. Everything
 * else goes through tRPC's public exports. If an upgrade moves these fields, the docs tests and
 * the HTTP parity test (fast path against tRPC's own handler) fail.
 */

/** What tRPC passes a procedure when it calls one. */
export interface ProcedureCallOptions {
  path: string;
  getRawInput: () => Promise<unknown>;
  ctx: unknown;
  type: TRPCProcedureType;
  signal: AbortSignal | undefined;
  batchIndex: number;
}

export interface RouterProcedure {
  type: TRPCProcedureType;
  /** The parsers given to `.input()`, in order. */
  inputs: readonly unknown[];
  /** The parser given to `.output()`; undefined when there is none. */
  output: unknown;
  meta: ProcedureMeta | undefined;
  /** Runs it as tRPC's own handlers do: middlewares, input parsing, resolver, output parsing. */
  call: (opts: ProcedureCallOptions) => Promise<unknown>;
}

interface ProcedureInternals {
  (opts: ProcedureCallOptions): Promise<unknown>;
  _def: { type: TRPCProcedureType; inputs: unknown[]; output?: unknown; meta?: ProcedureMeta };
}

/** Every procedure of `router` by dotted path, read once (look-ups cost nothing per request). */
export function routerProcedures(router: AnyTRPCRouter): ReadonlyMap<string, RouterProcedure> {
  const procedures = router._def.procedures as Record<string, ProcedureInternals>;
  const table = new Map<string, RouterProcedure>();
  for (const [path, procedure] of Object.entries(procedures)) {
    const def = procedure._def;
    table.set(path, {
      type: def.type,
      inputs: def.inputs,
      output: def.output,
      meta: def.meta,
      call: procedure,
    });
  }
  return table;
}

export interface ErrorShapeOptions {
  error: TRPCError;
  type: TRPCProcedureType | 'unknown';
  path: string | undefined;
  input: unknown;
  ctx: unknown;
}

/** The error body `router` sends, through its own `errorFormatter`, as tRPC's handlers build it. */
export function routerErrorShape(
  router: AnyTRPCRouter,
): (opts: ErrorShapeOptions) => TRPCErrorShape {
  const config = router._def._config;
  return ({ error, type, path, input, ctx }) =>
    getTRPCErrorShape({ config, error, type, path, input, ctx });
}
