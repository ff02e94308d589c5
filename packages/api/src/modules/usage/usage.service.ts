import { and, desc, eq, gte, lt, sql } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { formatUsdc } from '../../lib/money';
import { decodeCursor, encodeCursor, type Page } from '../../lib/pagination';
import { type ApiRequest, type GroupBy, toApiRequest, type UsageRow } from './usage.dto';
import { apiRequests } from './usage.table';

const groupKey = {
  day: sql<string>`to_char(date_trunc('day', ${apiRequests.createdAt} at time zone 'UTC'), 'YYYY-MM-DD')`,
  model: sql<string>`${apiRequests.model}`,
  agent: sql<string | null>`${apiRequests.agentId}::text`,
  member: sql<string | null>`${apiRequests.userId}::text`,
  key: sql<string | null>`${apiRequests.keyId}::text`,
} as const;

/**
 * Aggregates a project's calls over [from, to). The (project_id, created_at) index and its
 * per-dimension siblings keep the scan to the range asked for.
 */
export async function summary(opts: {
  db: Db;
  projectId: string;
  from: Date;
  to: Date;
  groupBy: GroupBy;
}): Promise<UsageRow[]> {
  const key = groupKey[opts.groupBy];
  const rows = await opts.db
    .select({
      key,
      requests: sql<number>`count(*)::int`,
      inputTokens: sql<number>`coalesce(sum(${apiRequests.inputTokens}), 0)::int`,
      outputTokens: sql<number>`coalesce(sum(${apiRequests.outputTokens}), 0)::int`,
      cacheWriteTokens: sql<number>`coalesce(sum(${apiRequests.cacheWriteTokens}), 0)::int`,
      cacheReadTokens: sql<number>`coalesce(sum(${apiRequests.cacheReadTokens}), 0)::int`,
      cost: sql<string>`coalesce(sum(${apiRequests.cost}), 0)::text`,
    })
    .from(apiRequests)
    .where(
      and(
        eq(apiRequests.projectId, opts.projectId),
        gte(apiRequests.createdAt, opts.from),
        lt(apiRequests.createdAt, opts.to),
      ),
    )
    .groupBy(key)
    .orderBy(key);
  return rows.map((r) => ({ ...r, cost: formatUsdc(BigInt(r.cost)) }));
}

export async function listRequests(opts: {
  db: Db;
  projectId: string;
  cursor?: string | undefined;
  limit: number;
}): Promise<Page<ApiRequest>> {
  const after = opts.cursor ? decodeCursor(opts.cursor) : null;
  const rows = await opts.db
    .select()
    .from(apiRequests)
    .where(
      and(
        eq(apiRequests.projectId, opts.projectId),
        after
          ? sql`(${apiRequests.createdAt}, ${apiRequests.id}) < (${after.at.toISOString()}::timestamptz, ${after.id}::uuid)`
          : undefined,
      ),
    )
    .orderBy(desc(apiRequests.createdAt), desc(apiRequests.id))
    .limit(opts.limit + 1);
  const more = rows.length > opts.limit;
  const page = more ? rows.slice(0, opts.limit) : rows;
  const last = page.at(-1);
  return {
    items: page.map(toApiRequest),
    nextCursor: more && last ? encodeCursor({ at: last.createdAt, id: last.id }) : null,
  };
}

/** Spend of the current calendar month (UTC). */
export async function spentThisMonth(db: Db, projectId: string, now = new Date()): Promise<bigint> {
  const from = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  const [row] = await db
    .select({ cost: sql<string>`coalesce(sum(${apiRequests.cost}), 0)::text` })
    .from(apiRequests)
    .where(and(eq(apiRequests.projectId, projectId), gte(apiRequests.createdAt, from)));
  return BigInt(row?.cost ?? '0');
}
