import { randomBytes } from 'node:crypto';
import { and, desc, eq, isNull, lt, or, sql } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { type Actor, auditedBy } from '../../lib/actor';
import { AppError } from '../../lib/errors';
import { SESSIONS_CHANNEL } from '../../realtime/connections';
import { recordAudit } from '../audit/audit.service';
import { hashToken } from '../auth/tokens';
import type { Membership } from '../projects/projects.service';
import { projectMembers } from '../projects/projects.table';
import { type ProjectRole, roleAtLeast } from '../projects/roles';
import type { User } from '../users/users.dto';
import { users } from '../users/users.table';
import { type ApiKey, type CreatedApiKey, toApiKey } from './api-keys.dto';
import { apiKeys } from './api-keys.table';

/** Every key starts with this, so a token can be told from a JWT without parsing it. */
export const API_KEY_PREFIX = 'ssk_';
/** Random bytes per secret: 256 bits, base64url-encoded to 43 characters. */
const SECRET_BYTES = 32;
/** Characters of the secret kept in clear for display: `ssk_` and 8 more. */
const DISPLAY_PREFIX_LENGTH = API_KEY_PREFIX.length + 8;

export function isApiKey(token: string): boolean {
  return token.startsWith(API_KEY_PREFIX);
}

/**
 * The credential id a key's sockets are registered under. Revoking the key NOTIFYs it on the
 * sessions channel, so every instance closes them (4001) exactly as for an ended session.
 */
export function keyCredentialId(keyId: string): string {
  return `key:${keyId}`;
}

/** A key that works: who it acts for, where, and with which role. */
export interface KeyCredential {
  keyId: string;
  projectId: string;
  /** The lower of the key's role and its creator's current role in the project. */
  role: ProjectRole;
  expiresAt: Date | null;
}

export type KeyAuthentication =
  | { ok: true; user: User; key: KeyCredential }
  | {
      ok: false;
      code: 'auth.unauthenticated' | 'auth.key_revoked' | 'auth.key_expired';
      message: string;
    };

function lowerRole(a: ProjectRole, b: ProjectRole): ProjectRole {
  return roleAtLeast(a, b) ? b : a;
}

/**
 * The key check every call made with a key runs: one indexed look-up of the secret's hash,
 * joined with its creator and the creator's membership, prepared once per database.
 */
const keyQueries = new WeakMap<Db, ReturnType<typeof prepareKeyQuery>>();
function prepareKeyQuery(db: Db) {
  return db
    .select({
      keyId: apiKeys.id,
      projectId: apiKeys.projectId,
      keyRole: apiKeys.role,
      expiresAt: apiKeys.expiresAt,
      revokedAt: apiKeys.revokedAt,
      userId: users.id,
      email: users.email,
      name: users.name,
      createdAt: users.createdAt,
      active: users.active,
      memberRole: projectMembers.role,
    })
    .from(apiKeys)
    .innerJoin(users, eq(users.id, apiKeys.createdBy))
    .leftJoin(
      projectMembers,
      and(eq(projectMembers.projectId, apiKeys.projectId), eq(projectMembers.userId, users.id)),
    )
    .where(eq(apiKeys.secretHash, sql.placeholder('secretHash')))
    .prepare('auth_api_key');
}

/**
 * Resolves a secret to its key. The look-up is by SHA-256 of the secret, so its timing says
 * nothing about how much of a guess was right. A key acts for its creator, but never with a
 * platform-admin role, never beyond its own role, and only while the creator is an active
 * member of the key's project.
 */
export async function authenticateKey(db: Db, secret: string): Promise<KeyAuthentication> {
  let query = keyQueries.get(db);
  if (!query) {
    query = prepareKeyQuery(db);
    keyQueries.set(db, query);
  }
  const [row] = await query.execute({ secretHash: hashToken(secret) });
  if (!row) return { ok: false, code: 'auth.unauthenticated', message: 'Sign in to do this' };
  if (row.revokedAt) {
    return { ok: false, code: 'auth.key_revoked', message: 'This API key has been revoked' };
  }
  if (row.expiresAt && row.expiresAt <= new Date()) {
    return { ok: false, code: 'auth.key_expired', message: 'This API key has expired' };
  }
  if (!row.active || !row.memberRole) {
    return {
      ok: false,
      code: 'auth.key_revoked',
      message: "This API key's creator no longer has access to its project",
    };
  }
  return {
    ok: true,
    user: {
      id: row.userId,
      email: row.email,
      name: row.name,
      role: 'user',
      createdAt: row.createdAt.toISOString(),
    },
    key: {
      keyId: row.keyId,
      projectId: row.projectId,
      role: lowerRole(row.keyRole, row.memberRole),
      expiresAt: row.expiresAt,
    },
  };
}

/**
 * Records when keys were last used without a write per request: at most one UPDATE per key
 * per `intervalMs` from this process, and the UPDATE itself skips a row another instance
 * touched within the interval.
 */
export function createKeyUsageRecorder(opts: {
  db: Db;
  intervalMs?: number;
  now?: () => number;
  onError?: (err: unknown) => void;
}) {
  const intervalMs = opts.intervalMs ?? 60_000;
  const now = opts.now ?? Date.now;
  const lastWrite = new Map<string, number>();
  return {
    /** Resolves once the write (if any) is done; callers need not wait for it. */
    async touch(keyId: string): Promise<void> {
      const at = now();
      const last = lastWrite.get(keyId);
      if (last !== undefined && at - last < intervalMs) return;
      // Bounded: forgetting an entry costs at most one extra (conditional) UPDATE.
      if (lastWrite.size >= 10_000) lastWrite.clear();
      lastWrite.set(keyId, at);
      await opts.db
        .update(apiKeys)
        .set({ lastUsedAt: new Date(at) })
        .where(
          and(
            eq(apiKeys.id, keyId),
            or(isNull(apiKeys.lastUsedAt), lt(apiKeys.lastUsedAt, new Date(at - intervalMs))),
          ),
        )
        .catch((err: unknown) => opts.onError?.(err));
    },
  };
}

export type KeyUsageRecorder = ReturnType<typeof createKeyUsageRecorder>;

export async function createApiKey(opts: {
  db: Db;
  membership: Membership;
  actor: Actor;
  name: string;
  role: ProjectRole;
  expiresAt?: Date | undefined;
}): Promise<CreatedApiKey> {
  if (!roleAtLeast(opts.membership.role, opts.role)) {
    throw new AppError(
      'apiKeys.role_exceeds_yours',
      `A key cannot have a higher role than yours (${opts.membership.role})`,
    );
  }
  const secret = API_KEY_PREFIX + randomBytes(SECRET_BYTES).toString('base64url');
  return opts.db.transaction(async (tx) => {
    const [row] = await tx
      .insert(apiKeys)
      .values({
        projectId: opts.membership.projectId,
        name: opts.name,
        role: opts.role,
        prefix: secret.slice(0, DISPLAY_PREFIX_LENGTH),
        secretHash: hashToken(secret),
        createdBy: opts.actor.userId,
        expiresAt: opts.expiresAt ?? null,
      })
      .returning();
    if (!row) throw new Error('insert returned no row');
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'api_keys.created',
      projectId: row.projectId,
      target: row.id,
      metadata: {
        name: row.name,
        role: row.role,
        prefix: row.prefix,
        expiresAt: row.expiresAt?.toISOString() ?? null,
      },
    });
    return { key: toApiKey(row), secret };
  });
}

/** Newest first, revoked ones included (they show when and stay for the record). */
export async function listApiKeys(opts: { db: Db; projectId: string }): Promise<ApiKey[]> {
  const rows = await opts.db
    .select()
    .from(apiKeys)
    .where(eq(apiKeys.projectId, opts.projectId))
    .orderBy(desc(apiKeys.createdAt), desc(apiKeys.id));
  return rows.map(toApiKey);
}

/** The project a key belongs to, for the membership check; null when there is no such key. */
export async function keyProjectId(db: Db, keyId: string): Promise<string | null> {
  const [row] = await db
    .select({ projectId: apiKeys.projectId })
    .from(apiKeys)
    .where(eq(apiKeys.id, keyId));
  return row?.projectId ?? null;
}

/**
 * Revokes a key for good. Project admins may revoke any key of the project; the creator may
 * revoke their own whatever their role now. Calls already made with it finish; new ones and
 * its open sockets (on every instance) stop when this commits.
 */
export async function revokeApiKey(opts: {
  db: Db;
  membership: Membership;
  actor: Actor;
  keyId: string;
}): Promise<ApiKey> {
  return opts.db.transaction(async (tx) => {
    const [current] = await tx
      .select({ createdBy: apiKeys.createdBy, revokedAt: apiKeys.revokedAt })
      .from(apiKeys)
      .where(and(eq(apiKeys.id, opts.keyId), eq(apiKeys.projectId, opts.membership.projectId)))
      .for('update');
    if (!current) throw new AppError('apiKeys.not_found', 'API key not found');
    const mayRevoke =
      roleAtLeast(opts.membership.role, 'admin') || current.createdBy === opts.actor.userId;
    if (!mayRevoke) {
      throw new AppError(
        'projects.role_insufficient',
        'Only project admins and the key’s creator can revoke it',
      );
    }
    if (current.revokedAt)
      throw new AppError('apiKeys.already_revoked', 'This key is already revoked');
    const [row] = await tx
      .update(apiKeys)
      .set({ revokedAt: new Date(), revokedBy: opts.actor.userId })
      .where(and(eq(apiKeys.id, opts.keyId), isNull(apiKeys.revokedAt)))
      .returning();
    if (!row) throw new Error('update returned no row');
    await tx.execute(sql`select pg_notify(${SESSIONS_CHANNEL}, ${keyCredentialId(row.id)})`);
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'api_keys.revoked',
      projectId: row.projectId,
      target: row.id,
      metadata: { name: row.name, prefix: row.prefix },
    });
    return toApiKey(row);
  });
}
