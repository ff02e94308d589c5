import { and, asc, desc, eq, gt, gte, lt, type SQL, sql } from 'drizzle-orm';
import { PgTransaction } from 'drizzle-orm/pg-core';
import type { Db } from '../../db/client';
import { AppError } from '../../lib/errors';
import type { Page } from '../../lib/pagination';
import { type AuditEvent, type AuditVerification, toAuditEvent } from './audit.dto';
import { auditHash, GENESIS_HASH, type Json } from './audit.hash';
import { auditEvents } from './audit.table';

// Any constant works; it only has to be the same for every instance of this app.
const AUDIT_LOCK = 727_274_003;
const ACTION = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;
// A backstop against obvious mistakes; callers must still never pass secrets.
const SECRET_KEY =
  /^(password|newpassword|currentpassword|passwordhash|token|accesstoken|refreshtoken|tokenhash|secret|apikey)$/i;

function assertNoSecrets(value: Json, path: string): void {
  if (value === null || typeof value !== 'object') return;
  for (const [k, v] of Object.entries(value)) {
    if (SECRET_KEY.test(k)) throw new Error(`audit metadata must not carry secrets (${path}${k})`);
    assertNoSecrets(v, `${path}${k}.`);
  }
}

/**
 * Appends an event to the chain. Pass the transaction that makes the change, so the event
 * commits or rolls back with it; given a plain database it opens its own transaction.
 * Appenders are serialised by a transaction-level advisory lock held until commit, so ids
 * are assigned in commit order and each row links to the one committed before it. Call it
 * as the last statement of a transaction: nothing should wait on other locks while holding
 * this one.
 */
export async function recordAudit(opts: {
  db: Db;
  actorId: string | null;
  /** The project API key the actor used, if any. */
  actorKeyId?: string | null | undefined;
  /** Stable and dotted, e.g. `auth.login_failed`, `projects.member_added`. */
  action: string;
  projectId?: string | null | undefined;
  target?: string | null | undefined;
  ip?: string | null | undefined;
  /** Never passwords, tokens or other secrets. */
  metadata?: Record<string, Json> | undefined;
}): Promise<AuditEvent> {
  if (!ACTION.test(opts.action)) throw new Error(`audit action is not dotted: ${opts.action}`);
  const metadata = opts.metadata ?? {};
  assertNoSecrets(metadata, '');
  const append = async (tx: Db) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${AUDIT_LOCK})`);
    const [last] = await tx
      .select({ hash: auditEvents.hash })
      .from(auditEvents)
      .orderBy(desc(auditEvents.id))
      .limit(1);
    const content = {
      // Milliseconds, like the column, so the hashed value is the stored one.
      at: new Date(),
      actorId: opts.actorId,
      actorKeyId: opts.actorKeyId ?? null,
      action: opts.action,
      projectId: opts.projectId ?? null,
      target: opts.target ?? null,
      ip: opts.ip ?? null,
      metadata,
      prevHash: last?.hash ?? GENESIS_HASH,
    };
    const [row] = await tx
      .insert(auditEvents)
      .values({ ...content, hash: auditHash(content) })
      .returning();
    if (!row) throw new Error('insert returned no row');
    return toAuditEvent(row);
  };
  return isTransaction(opts.db) ? append(opts.db) : opts.db.transaction(append);
}

// A plain boolean on purpose: narrowing `Db` to PgTransaction would lose the schema type.
function isTransaction(db: Db): boolean {
  return db instanceof PgTransaction;
}

function decodeIdCursor(cursor: string): number {
  if (!/^[1-9][0-9]{0,14}$/.test(cursor)) {
    throw new AppError('pagination.invalid_cursor', 'The cursor is not valid for this list');
  }
  return Number(cursor);
}

/** Newest first. `from` is inclusive, `to` exclusive. The cursor is the last id seen. */
export async function listAudit(opts: {
  db: Db;
  projectId?: string | undefined;
  actorId?: string | undefined;
  action?: string | undefined;
  from?: Date | undefined;
  to?: Date | undefined;
  cursor?: string | undefined;
  limit: number;
}): Promise<Page<AuditEvent>> {
  const where: (SQL | undefined)[] = [
    opts.cursor ? lt(auditEvents.id, decodeIdCursor(opts.cursor)) : undefined,
    opts.projectId ? eq(auditEvents.projectId, opts.projectId) : undefined,
    opts.actorId ? eq(auditEvents.actorId, opts.actorId) : undefined,
    opts.action ? eq(auditEvents.action, opts.action) : undefined,
    opts.from ? gte(auditEvents.at, opts.from) : undefined,
    opts.to ? lt(auditEvents.at, opts.to) : undefined,
  ];
  const rows = await opts.db
    .select()
    .from(auditEvents)
    .where(and(...where))
    .orderBy(desc(auditEvents.id))
    .limit(opts.limit + 1);
  const more = rows.length > opts.limit;
  const page = more ? rows.slice(0, opts.limit) : rows;
  const last = page[page.length - 1];
  return {
    items: page.map(toAuditEvent),
    nextCursor: more && last ? String(last.id) : null,
  };
}

/**
 * Walks the whole chain in id order, a page at a time, recomputing every hash. The first row
 * whose content no longer matches its hash, or whose previous hash is not the hash of the row
 * before it (a row changed, removed or inserted out of band), is reported.
 */
export async function verifyAudit(opts: { db: Db; pageSize?: number }): Promise<AuditVerification> {
  const pageSize = opts.pageSize ?? 1000;
  let prevHash = GENESIS_HASH;
  let afterId = 0;
  let checked = 0;
  for (;;) {
    const rows = await opts.db
      .select()
      .from(auditEvents)
      .where(gt(auditEvents.id, afterId))
      .orderBy(asc(auditEvents.id))
      .limit(pageSize);
    for (const row of rows) {
      checked++;
      if (row.prevHash !== prevHash || auditHash(row) !== row.hash) {
        return { ok: false, checked, firstBrokenId: String(row.id) };
      }
      prevHash = row.hash;
      afterId = row.id;
    }
    if (rows.length < pageSize) return { ok: true, checked, firstBrokenId: null };
  }
}
