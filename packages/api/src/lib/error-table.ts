import type { TRPC_ERROR_CODE_KEY } from '@trpc/server';

/**
 * The error codes one module owns: each stable dotted code with the tRPC code it travels as.
 * A module narrows `Code` to its own namespace (`chat.${string}`), so a code filed in the
 * wrong module does not compile.
 */
export type ErrorTable<Code extends string = string> = Readonly<
  Record<Code, { readonly transport: TRPC_ERROR_CODE_KEY }>
>;
