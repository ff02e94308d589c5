/**
 * 1. INITIALISATION: tRPC is initialised once, with an error formatter that gives every
 *    error a stable `appCode` and hides internals.
 */
import { initTRPC, TRPCError } from '@trpc/server';
import { z } from 'zod';
import type { Context, Principal } from './context';
import type { Db } from './db/client';
import { type Actor, keyActor, userActor } from './lib/actor';
import { AppError, type AppErrorCode, appErrorCodes, genericAppCodes } from './lib/errors';
import { rawInputIssues } from './lib/input';
import { isServiceUnavailable, serviceUnavailable } from './lib/unavailable';
import type { AuthUser } from './modules/auth/auth.service';
import { type Membership, requireMembership } from './modules/projects/projects.service';
import { type ProjectRole, roleAtLeast } from './modules/projects/roles';

function isZodError(e: unknown): e is z.core.$ZodError {
  return e instanceof z.core.$ZodError;
}

/**
 * Who may call a procedure. The builders below set it, so the generated reference
 * (GET /docs) reads it from the same place as the checks that run and cannot drift.
 */
export type AuthLevel = 'public' | 'user' | 'admin' | { project: ProjectRole };

export interface ProcedureMeta {
  auth?: AuthLevel;
  /**
   * Whether a project API key may call it. Unset: project-scoped procedures yes, the rest no
   * (a key belongs to one project); platform-admin procedures never.
   */
  keys?: boolean;
  /** Shown in the API reference; say what the shape of the input alone does not. */
  description?: string;
}

const withMeta = initTRPC.context<Context>().meta<ProcedureMeta>();

const t = withMeta.create({
  // Stack traces stay in the logs, never in responses.
  isDev: false,
  errorFormatter({ shape, error }) {
    const cause = error.cause;
    // tRPC reports unparseable JSON input as BAD_REQUEST caused by a SyntaxError.
    const malformed = error.code === 'BAD_REQUEST' && cause instanceof SyntaxError;
    const appCode =
      cause instanceof AppError
        ? cause.code
        : malformed
          ? 'request.malformed'
          : (genericAppCodes[error.code] ?? 'internal');
    const invalidInput = error.code === 'BAD_REQUEST' && isZodError(cause);
    const flat = invalidInput ? z.flattenError(cause) : undefined;
    let message = shape.message;
    if (error.code === 'INTERNAL_SERVER_ERROR') message = 'Internal server error';
    else if (flat) message = flat.formErrors[0] ?? 'Invalid input';
    else if (malformed) message = 'Malformed JSON input';
    return {
      message,
      code: shape.code,
      data: {
        code: shape.data.code,
        httpStatus: shape.data.httpStatus,
        path: shape.data.path,
        appCode,
        ...(flat ? { fieldErrors: flat.fieldErrors as Record<string, string[]> } : {}),
        ...(cause instanceof AppError && cause.code === 'rate_limited'
          ? { retryAfterMs: cause.meta?.retryAfterMs as number }
          : {}),
      },
    };
  },
});

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;

/** 2. MIDDLEWARE */

export function toTRPCError(cause: AppError): TRPCError {
  return new TRPCError({ code: appErrorCodes[cause.code], message: cause.message, cause });
}

/**
 * Maps app errors thrown by services to tRPC errors through the one code table. A database
 * that cannot be reached is an outage, not a bug: service.unavailable (503), so clients back
 * off and retry.
 */
const appErrors = t.middleware(async ({ next }) => {
  const result = await next();
  if (result.ok) return result;
  const cause = result.error.cause;
  if (cause instanceof AppError) throw toTRPCError(cause);
  if (isServiceUnavailable(cause)) throw toTRPCError(serviceUnavailable(cause));
  return result;
});

/**
 * Per-IP limit on procedure calls. It counts calls, not HTTP requests, so a batch of 20 or
 * a busy socket spends 20 or many, and neither slips past the limit.
 */
const callRateLimit = t.middleware(async ({ ctx, next }) => {
  const limit = ctx.config.rateLimitPerMinute;
  if (limit > 0) {
    const r = await ctx.limiter.hit(`call:${ctx.req.ip}`, limit, 60_000);
    if (!r.allowed) {
      throw new AppError('rate_limited', 'Too many requests; slow down', {
        retryAfterMs: r.retryAfterMs,
      });
    }
  }
  return next();
});

/**
 * Refuses input no procedure can store (NUL, lone surrogates) or should parse (absurd nesting)
 * as bad input naming the field, for every procedure before its own parsers run
 *. Input that cannot be read at all is left to those parsers, which report
 * it their own way (an upload too large is files.too_large).
 */
const wellFormedInput = t.middleware(async ({ getRawInput, next }) => {
  let raw: unknown;
  try {
    raw = await getRawInput();
  } catch {
    return next();
  }
  const issues = rawInputIssues(raw);
  // ZodRealError, as zod's own parse throws: an Error, so tRPC keeps it as the cause.
  if (issues.length > 0) {
    throw new TRPCError({ code: 'BAD_REQUEST', cause: new z.ZodRealError(issues) });
  }
  return next();
});

/** Whether a key may call a procedure with this meta. */
export function keysAllowed(meta: ProcedureMeta | undefined): boolean {
  const auth = meta?.auth;
  if (auth === 'admin' || auth === 'public') return false;
  return meta?.keys ?? (typeof auth === 'object' && 'project' in auth);
}

function actorOf(principal: Principal, req: Context['req']): Actor {
  return principal.kind === 'key'
    ? keyActor(principal.key.keyId, principal.user.id, req)
    : userActor(principal.user.id, req);
}

const requireUser = t.middleware(async ({ ctx, meta, next }) => {
  const auth = await ctx.authenticate();
  if (!auth.ok) throw new AppError(auth.code, auth.message);
  const { principal } = auth;
  if (principal.kind === 'key' && !keysAllowed(meta)) {
    throw new AppError(
      'auth.key_not_allowed',
      'API keys cannot call this procedure; sign in as a person to do it',
    );
  }
  return next({ ctx: { user: principal.user, principal, actor: actorOf(principal, ctx.req) } });
});

/** The person and session behind a call; for procedures keys may not call (meta `keys`). */
export function sessionUser(principal: Principal): AuthUser {
  if (principal.kind !== 'session') {
    throw new AppError('auth.key_not_allowed', 'API keys cannot call this procedure');
  }
  return principal.user;
}

/**
 * The caller's membership in `projectId`. A key sees only its own project (any other answers
 * NOT_FOUND, as for a non-member) and acts with the lower of its role and its creator's.
 */
async function membershipOf(
  ctx: { db: Db; principal: Principal },
  projectId: string,
): Promise<Membership> {
  const { principal } = ctx;
  if (principal.kind === 'key') {
    if (principal.key.projectId !== projectId) {
      throw new AppError('projects.not_found', 'No such project');
    }
    return { projectId, userId: principal.user.id, role: principal.key.role };
  }
  return requireMembership({ db: ctx.db, projectId, userId: principal.user.id });
}

/** 3. PROCEDURES */

export const publicProcedure = t.procedure
  .meta({ auth: 'public' })
  .use(appErrors)
  .use(callRateLimit)
  .use(wellFormedInput);

/** A signed-in, active user whose session has not ended; `ctx.user` is narrowed. */
export const authedProcedure = publicProcedure.meta({ auth: 'user' }).use(requireUser);

/** A platform admin. */
export const adminProcedure = authedProcedure.meta({ auth: 'admin' }).use(async ({ ctx, next }) => {
  if (ctx.user.role !== 'admin') throw new AppError('auth.admin_required', 'Admins only');
  return next();
});

/**
 * Every project-scoped procedure goes through here. A non-member gets NOT_FOUND, exactly as
 * for a project that does not exist; a member below `minRole` gets FORBIDDEN.
 */
export function projectProcedure(minRole: ProjectRole) {
  return authedProcedure
    .meta({ auth: { project: minRole } })
    .input(z.object({ projectId: z.uuid() }))
    .use(async ({ ctx, input, next }) => {
      const membership = await membershipOf(ctx, input.projectId);
      if (!roleAtLeast(membership.role, minRole)) {
        throw new AppError(
          'projects.role_insufficient',
          `This needs the ${minRole} role or higher`,
        );
      }
      return next({ ctx: { membership } });
    });
}

/**
 * For procedures addressed by a resource id (conversationId, replyId, ...): `resolve` finds
 * the owning project, then the same membership rule applies. A resource in a project the
 * caller is not in answers `notFound`, exactly as one that does not exist.
 */
export function resourceProcedure<S extends z.ZodObject>(
  minRole: ProjectRole,
  opts: {
    input: S;
    notFound: AppErrorCode;
    resolve: (args: { db: Db; input: z.output<S> }) => Promise<string | null>;
  },
) {
  const member = authedProcedure.meta({ auth: { project: minRole } });
  return member.input(opts.input).use(async ({ ctx, input, next }) => {
    const missing = () => new AppError(opts.notFound, 'Not found');
    const projectId = await opts.resolve({ db: ctx.db, input: input as z.output<S> });
    if (!projectId) throw missing();
    const membership = await membershipOf(ctx, projectId).catch((e: unknown) => {
      throw e instanceof AppError && e.code === 'projects.not_found' ? missing() : e;
    });
    if (!roleAtLeast(membership.role, minRole)) {
      throw new AppError('projects.role_insufficient', `This needs the ${minRole} role or higher`);
    }
    return next({ ctx: { membership } });
  });
}
