/**
 * 1. INITIALISATION: tRPC is initialised once, with an error formatter that gives every
 *    error a stable `appCode` and hides internals.
 */
import { SpanKind } from '@opentelemetry/api';
import { getTRPCErrorFromUnknown, initTRPC, TRPCError } from '@trpc/server';
import { sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Authentication, Context, Principal } from './context';
import { type Db, rowsOf } from './db/client';
import { type Actor, keyActor, userActor } from './lib/actor';
import { AppError, type AppErrorCode, appErrorCodes, genericAppCodes } from './lib/errors';
import { rawInputIssues } from './lib/input';
import { failSpan, tracer, tracingEnabled } from './lib/tracing';
import { isServiceUnavailable, serviceUnavailable } from './lib/unavailable';
import type {
  AuthUser,
  ProjectAccess,
  ResourceAccess,
  ResourceOwner,
} from './modules/auth/auth.service';
import { type Membership, requireMembership } from './modules/projects/projects.service';
import type { ProjectRow } from './modules/projects/projects.table';
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
function mapAppError(thrown: unknown): TRPCError {
  const error = getTRPCErrorFromUnknown(thrown);
  const cause = error.cause;
  if (cause instanceof AppError) return toTRPCError(cause);
  if (isServiceUnavailable(cause)) return toTRPCError(serviceUnavailable(cause));
  return error;
}

/** What the rest of a call answered, its app errors mapped. */
function mapAppErrors<R extends { ok: boolean; error?: unknown }>(result: R): R {
  if (result.ok) return result;
  const mapped = mapAppError(result.error);
  if (mapped !== result.error) throw mapped;
  return result;
}

/**
 * The checks every call passes first, in this order. The per-IP limit counts calls, not HTTP
 * requests, so a batch of 20 or a busy socket spends 20 or many, and neither slips past it.
 * Then input no procedure can store (NUL, lone surrogates) or should parse (absurd nesting) is
 * refused as bad input naming the field, before any procedure's own parsers run; input that
 * cannot be read at all is left to those parsers, which report it their own way (an upload too
 * large is files.too_large). Returns the raw input (undefined when unreadable).
 */
async function admit(ctx: Context, getRawInput: () => Promise<unknown>): Promise<unknown> {
  const limit = ctx.config.rateLimitPerMinute;
  if (limit > 0) {
    const r = await ctx.limiter.hit(`call:${ctx.req.ip}`, limit, 60_000);
    if (!r.allowed) {
      throw new AppError('rate_limited', 'Too many requests; slow down', {
        retryAfterMs: r.retryAfterMs,
      });
    }
  }
  let raw: unknown;
  try {
    raw = await getRawInput();
  } catch {
    return undefined;
  }
  const issues = rawInputIssues(raw);
  // ZodRealError, as zod's own parse throws: an Error, so tRPC keeps it as the cause.
  if (issues.length > 0) {
    throw new TRPCError({ code: 'BAD_REQUEST', cause: new z.ZodRealError(issues) });
  }
  return raw;
}

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

/** The caller of a procedure with this meta, or the error that refuses it. */
function callerOf(auth: Authentication, meta: ProcedureMeta | undefined) {
  if (!auth.ok) throw new AppError(auth.code, auth.message);
  const { principal } = auth;
  if (principal.kind === 'key' && !keysAllowed(meta)) {
    throw new AppError(
      'auth.key_not_allowed',
      'API keys cannot call this procedure; sign in as a person to do it',
    );
  }
  return principal;
}

/** What an authenticated call adds to the context. */
function callerContext(principal: Principal, req: Context['req']) {
  return { user: principal.user, principal, actor: actorOf(principal, req) };
}

/**
 * A span per call (`trpc <procedure>`): the procedure, its type, and once known the project
 * and the outcome (the appCode of a failure). A no-op while tracing is off.
 */
function traced<R extends { ok: boolean }>(
  ctx: Context,
  path: string,
  type: string,
  run: () => Promise<R>,
): Promise<R> {
  // Tracing off: no span (the no-op tracer still costs a span object and a context switch).
  if (!tracingEnabled()) return run();
  return tracer().startActiveSpan(
    `trpc ${path}`,
    {
      kind: SpanKind.SERVER,
      attributes: { 'rpc.system': 'trpc', 'rpc.method': path, 'rpc.type': type },
    },
    async (span) => {
      const trail = ctx.req.trail;
      if (trail && span.isRecording()) trail.traceId = span.spanContext().traceId;
      try {
        const result = await run();
        if (!result.ok) {
          const error = (result as unknown as { error: TRPCError }).error;
          failSpan(span, error.cause instanceof AppError ? error.cause : error);
        }
        return result;
      } catch (err) {
        failSpan(span, err instanceof TRPCError && err.cause instanceof AppError ? err.cause : err);
        throw err;
      } finally {
        const projectId = ctx.req.trail?.projectId;
        if (projectId) span.setAttribute('smartspace.project_id', projectId);
        span.end();
      }
    },
  );
}

/**
 * The first middleware of every procedure: admit(), then (for all but public procedures) the
 * caller, with app errors mapped both from these checks and from everything after them. One
 * middleware rather than a chain of four: tRPC copies the call's options and context at every
 * link, which was a measurable share of a short call's CPU.
 */
const admitPublic = t.middleware(({ ctx, path, type, getRawInput, next }) =>
  traced(ctx, path, type, async () => {
    try {
      await admit(ctx, getRawInput);
    } catch (e) {
      throw mapAppError(e);
    }
    return mapAppErrors(await next());
  }),
);

/** A signed-in caller, before the input is parsed (a stranger learns nothing of its rules). */
const admitUser = t.middleware(({ ctx, meta, path, type, getRawInput, next }) =>
  traced(ctx, path, type, async () => {
    let caller: ReturnType<typeof callerContext>;
    try {
      await admit(ctx, getRawInput);
      caller = callerContext(callerOf(await ctx.authenticate(), meta), ctx.req);
    } catch (e) {
      throw mapAppError(e);
    }
    return mapAppErrors(await next({ ctx: caller }));
  }),
);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The `projectId` of a call's raw input when it has the form of one, else null. */
function rawProjectId(raw: unknown): string | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const id: unknown = (raw as { projectId?: unknown }).projectId;
  return typeof id === 'string' && UUID.test(id) ? id : null;
}

/**
 * admitUser for project-scoped procedures, and the project check in the same link (tRPC
 * copies the call's options and context at every link): when the raw input names a project,
 * the session check also reads the caller's membership and the project in the same query
 * (`projectAccess`), and the membership and role are checked here, before the input is parsed.
 * Without a projectId of that form no check is made, and the input, which requires one, is
 * refused next: no handler runs without its membership.
 */
function admitUserInProject(minRole: ProjectRole) {
  return t.middleware(({ ctx, meta, path, type, getRawInput, next }) =>
    traced(ctx, path, type, async () => {
      let caller: ReturnType<typeof callerContext> & {
        membership: Membership;
        project: ProjectRow | undefined;
      };
      try {
        const projectId = rawProjectId(await admit(ctx, getRawInput));
        const { auth, access } = projectId
          ? await ctx.authenticateInProject(projectId)
          : { auth: await ctx.authenticate(), access: undefined };
        const principal = callerOf(auth, meta);
        const scope = projectId
          ? await membershipOf({ db: ctx.db, principal, projectAccess: access ?? null }, projectId)
          : null;
        if (scope && !roleAtLeast(scope.membership.role, minRole)) {
          throw new AppError(
            'projects.role_insufficient',
            `This needs the ${minRole} role or higher`,
          );
        }
        caller = {
          user: principal.user,
          principal,
          actor: actorOf(principal, ctx.req),
          // Only absent when the input is refused before any handler runs (see above).
          membership: scope?.membership as Membership,
          // The row read with the session check, when it was (projects.get uses it).
          project: scope?.project,
        };
      } catch (e) {
        throw mapAppError(e);
      }
      return mapAppErrors(await next({ ctx: caller }));
    }),
  );
}

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
  ctx: { db: Db; principal: Principal; projectAccess?: ProjectAccess | null },
  projectId: string,
): Promise<{ membership: Membership; project?: ProjectRow }> {
  const { principal } = ctx;
  if (principal.kind === 'key') {
    if (principal.key.projectId !== projectId) {
      throw new AppError('projects.not_found', 'No such project');
    }
    return { membership: { projectId, userId: principal.user.id, role: principal.key.role } };
  }
  const access = ctx.projectAccess;
  if (access && access.projectId === projectId) {
    if (!access.member) throw new AppError('projects.not_found', 'No such project');
    const { role, project } = access.member;
    return { membership: { projectId, userId: principal.user.id, role }, project };
  }
  return {
    membership: await requireMembership({ db: ctx.db, projectId, userId: principal.user.id }),
  };
}

/** 3. PROCEDURES */

export const publicProcedure = t.procedure.meta({ auth: 'public' }).use(admitPublic);

/** A signed-in, active user whose session has not ended; `ctx.user` is narrowed. */
export const authedProcedure = t.procedure.meta({ auth: 'user' }).use(admitUser);

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
  return t.procedure
    .meta({ auth: { project: minRole } })
    .use(admitUserInProject(minRole))
    .input(z.object({ projectId: z.uuid() }));
}

/**
 * For procedures addressed by a resource id (conversationId, replyId, ...): `owner` finds the
 * owning project, then the same membership rule applies. A resource in a project the caller
 * is not in answers `notFound`, exactly as one that does not exist. For a session the check
 * is one round trip: the session, the owner and the membership in one query, keyed by the
 * raw input's `id` field when it has the form of a uuid (before the input is parsed, as for
 * every signed-in call); otherwise, and for API keys, the owner and membership are read after.
 */
export function resourceProcedure<S extends z.ZodObject, K extends keyof z.output<S> & string>(
  minRole: ProjectRole,
  opts: {
    input: S;
    /** The input field holding the resource's id. */
    id: K;
    notFound: AppErrorCode;
    owner: ResourceOwner;
  },
) {
  const admitUserInResource = t.middleware(({ ctx, meta, path, type, getRawInput, next }) =>
    traced(ctx, path, type, async () => {
      let caller: ReturnType<typeof callerContext> & { resourceAccess: ResourceAccess | null };
      try {
        const raw = await admit(ctx, getRawInput);
        const rawId =
          typeof raw === 'object' && raw !== null
            ? (raw as Record<string, unknown>)[opts.id]
            : null;
        const { auth, access } =
          typeof rawId === 'string' && UUID.test(rawId)
            ? await ctx.authenticateInResource(opts.owner, rawId)
            : { auth: await ctx.authenticate(), access: undefined };
        const principal = callerOf(auth, meta);
        caller = { ...callerContext(principal, ctx.req), resourceAccess: access ?? null };
      } catch (e) {
        throw mapAppError(e);
      }
      return mapAppErrors(await next({ ctx: caller }));
    }),
  );
  return t.procedure
    .meta({ auth: { project: minRole } })
    .use(admitUserInResource)
    .input(opts.input)
    .use(async ({ ctx, input, next }) => {
      const missing = () => new AppError(opts.notFound, 'Not found');
      const id = String((input as z.output<S>)[opts.id]);
      const access = ctx.resourceAccess;
      let membership: Membership;
      if (access && access.resourceId === id) {
        if (!access.member) throw missing();
        membership = {
          projectId: access.member.projectId,
          userId: ctx.user.id,
          role: access.member.role,
        };
      } else {
        const [row] = rowsOf<{ projectId: string | null }>(
          await ctx.db.execute(sql`select ${opts.owner.project(sql`${id}`)} as "projectId"`),
        );
        const projectId = row?.projectId;
        if (!projectId) throw missing();
        ({ membership } = await membershipOf(ctx, projectId).catch((e: unknown) => {
          throw e instanceof AppError && e.code === 'projects.not_found' ? missing() : e;
        }));
      }
      // For the request's log line and span: the project the resource belongs to.
      if (ctx.req.trail) ctx.req.trail.projectId = membership.projectId;
      if (!roleAtLeast(membership.role, minRole)) {
        throw new AppError(
          'projects.role_insufficient',
          `This needs the ${minRole} role or higher`,
        );
      }
      return next({ ctx: { membership } });
    });
}
