import { and, desc, eq, gte, type SQL, sql } from 'drizzle-orm';
import { type Db, rowsOf } from '../../db/client';
import { formatUsdc } from '../../lib/money';
import { decodeCursor, encodeCursor, type Page } from '../../lib/pagination';
import { type ApiRequest, type GroupBy, toApiRequest, type UsageRow } from './usage.dto';
import { apiRequests, usageDaily } from './usage.table';

/**
 * Adds the finished calls a CTE of the same statement returned (api_requests columns) to
 * usage_daily. Every statement that finishes calls ends with it, so the rollup and the rows
 * never disagree. Rows go in key order, so two statements lock shared rows in one order.
 */
export function rollUpFrom(cte: string): SQL {
  return sql.raw(`insert into usage_daily as u (project_id, day, dimension, key, requests,
      input_tokens, output_tokens, cache_write_tokens, cache_read_tokens, cost)
    select r.project_id, (r.created_at at time zone 'UTC')::date, d.dimension, d.key, count(*),
      sum(r.input_tokens), sum(r.output_tokens), sum(r.cache_write_tokens),
      sum(r.cache_read_tokens), sum(r.cost)
    from ${cte} r
      cross join lateral (values ('all', null), ('model', r.model), ('agent', r.agent_id::text),
        ('member', r.user_id::text), ('key', r.key_id::text)) as d(dimension, key)
    group by 1, 2, 3, 4
    order by 1, 3, 2, 4
    on conflict (project_id, dimension, day, key) do update set
      requests = u.requests + excluded.requests,
      input_tokens = u.input_tokens + excluded.input_tokens,
      output_tokens = u.output_tokens + excluded.output_tokens,
      cache_write_tokens = u.cache_write_tokens + excluded.cache_write_tokens,
      cache_read_tokens = u.cache_read_tokens + excluded.cache_read_tokens,
      cost = u.cost + excluded.cost`);
}

/** A finished (or denied) call's row, as finishedRequests takes it (JSON). */
export interface FinishedRequest {
  id: string;
  project_id: string;
  user_id: string | null;
  key_id: string | null;
  agent_id: string | null;
  run_id: string | null;
  conversation_id: string | null;
  source: 'chat' | 'run' | 'api';
  model: string;
  status: 'succeeded' | 'failed' | 'cancelled' | 'denied';
  error_code: string | null;
  input_tokens: number;
  output_tokens: number;
  cache_write_tokens: number;
  cache_read_tokens: number;
  /** Micro-USDC, as a decimal string. */
  cost: string;
  latency_ms: number | null;
  /** When the call started; now when absent. */
  created_at?: Date | string;
}

/**
 * Writes finished calls' rows (an upsert: a call put on record as in progress is finished;
 * one the sweeper already marked interrupted stays as it is), returning what rollUpFrom needs
 * for the rows written. For a CTE: `with req as (${finishedRequests(rows)}) ...`.
 */
export function finishedRequests(rows: FinishedRequest[]): SQL {
  return sql`
    insert into api_requests (id, project_id, user_id, key_id, agent_id, run_id,
      conversation_id, source, model, status, error_code, input_tokens, output_tokens,
      cache_write_tokens, cache_read_tokens, cost, reserved, latency_ms, created_at,
      finished_at, heartbeat_at)
    select x.id, x.project_id, x.user_id, x.key_id, x.agent_id, x.run_id, x.conversation_id,
      x.source::request_source, x.model, x.status::request_status, x.error_code,
      x.input_tokens, x.output_tokens, x.cache_write_tokens, x.cache_read_tokens,
      x.cost::bigint, 0, x.latency_ms, coalesce(x.created_at, now()), now(), null
    from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as x(id uuid, project_id uuid,
      user_id uuid, key_id uuid, agent_id uuid, run_id uuid, conversation_id uuid, source text,
      model text, status text, error_code text, input_tokens int, output_tokens int,
      cache_write_tokens int, cache_read_tokens int, cost text, latency_ms int,
      created_at timestamptz)
    on conflict (id) do update set status = excluded.status, error_code = excluded.error_code,
      input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
      cache_write_tokens = excluded.cache_write_tokens,
      cache_read_tokens = excluded.cache_read_tokens, cost = excluded.cost, reserved = 0,
      latency_ms = excluded.latency_ms, finished_at = excluded.finished_at, heartbeat_at = null
      where api_requests.status = 'in_progress'
    returning ${ROLLUP_COLUMNS}`;
}

/** Writes finished calls' rows and adds them to usage_daily, in one statement. */
export async function recordFinished(db: Db, rows: FinishedRequest[]): Promise<number> {
  const [row] = rowsOf<{ n: number }>(
    await db.execute(
      sql`with req as (${finishedRequests(rows)}), roll as (${rollUpFrom('req')})
        select count(*)::int as n from req`,
    ),
  );
  return row?.n ?? 0;
}

/** The columns rollUpFrom needs, for a RETURNING clause. */
export const ROLLUP_COLUMNS = sql.raw(
  'project_id, created_at, model, agent_id, user_id, key_id, input_tokens, output_tokens, cache_write_tokens, cache_read_tokens, cost',
);

const DAY_MS = 86_400_000;
const dayOf = (d: Date) => d.toISOString().slice(0, 10);

/** Per grouping: the rollup's dimension and key, and the same key computed from a call. */
const groupKeys = {
  day: {
    dimension: 'all',
    daily: "to_char(day, 'YYYY-MM-DD')",
    raw: "to_char(created_at at time zone 'UTC', 'YYYY-MM-DD')",
  },
  model: { dimension: 'model', daily: 'key', raw: 'model' },
  agent: { dimension: 'agent', daily: 'key', raw: 'agent_id::text' },
  member: { dimension: 'member', daily: 'key', raw: 'user_id::text' },
  key: { dimension: 'key', daily: 'key', raw: 'key_id::text' },
} as const;

/**
 * Aggregates a project's finished calls that started in [from, to): the whole UTC days in
 * the range from usage_daily, the partial days at its ends from the calls themselves (the
 * (project_id, created_at) index keeps that to those hours). A call is counted once it has
 * finished (or was denied, or swept as interrupted).
 */
export async function summary(opts: {
  db: Db;
  projectId: string;
  from: Date;
  to: Date;
  groupBy: GroupBy;
}): Promise<UsageRow[]> {
  const key = groupKeys[opts.groupBy];
  // Whole days: from the first midnight at or after `from` to the last at or before `to`.
  const firstDay = new Date(Math.ceil(opts.from.getTime() / DAY_MS) * DAY_MS);
  const lastDay = new Date(Math.floor(opts.to.getTime() / DAY_MS) * DAY_MS);
  const whole = firstDay < lastDay;
  const edges = whole
    ? sql`((created_at >= ${opts.from.toISOString()}::timestamptz and created_at < ${firstDay.toISOString()}::timestamptz)
        or (created_at >= ${lastDay.toISOString()}::timestamptz and created_at < ${opts.to.toISOString()}::timestamptz))`
    : sql`created_at >= ${opts.from.toISOString()}::timestamptz and created_at < ${opts.to.toISOString()}::timestamptz`;
  const daily = whole
    ? sql`select ${sql.raw(key.daily)} as key, requests, input_tokens, output_tokens,
          cache_write_tokens, cache_read_tokens, cost
        from usage_daily
        where project_id = ${opts.projectId}::uuid and dimension = ${key.dimension}
          and day >= ${dayOf(firstDay)}::date and day < ${dayOf(lastDay)}::date
        union all `
    : sql``;
  const rows = rowsOf<{
    key: string | null;
    requests: string;
    inputTokens: string;
    outputTokens: string;
    cacheWriteTokens: string;
    cacheReadTokens: string;
    cost: string;
  }>(
    await opts.db.execute(sql`
      select key, sum(requests)::text as "requests", sum(input_tokens)::text as "inputTokens",
        sum(output_tokens)::text as "outputTokens",
        sum(cache_write_tokens)::text as "cacheWriteTokens",
        sum(cache_read_tokens)::text as "cacheReadTokens", sum(cost)::text as "cost"
      from (
        ${daily}select ${sql.raw(key.raw)} as key, 1 as requests, input_tokens, output_tokens,
          cache_write_tokens, cache_read_tokens, cost
        from api_requests
        where project_id = ${opts.projectId}::uuid and status <> 'in_progress' and ${edges}
      ) calls
      group by key
      order by key nulls last`),
  );
  return rows.map((r) => ({
    key: r.key,
    requests: Number(r.requests),
    inputTokens: Number(r.inputTokens),
    outputTokens: Number(r.outputTokens),
    cacheWriteTokens: Number(r.cacheWriteTokens),
    cacheReadTokens: Number(r.cacheReadTokens),
    cost: formatUsdc(BigInt(r.cost)),
  }));
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

/** Spend of the current calendar month (UTC): whole days, from usage_daily. */
export async function spentThisMonth(db: Db, projectId: string, now = new Date()): Promise<bigint> {
  const from = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  const [row] = await db
    .select({ cost: sql<string>`coalesce(sum(${usageDaily.cost}), 0)::text` })
    .from(usageDaily)
    .where(
      and(
        eq(usageDaily.projectId, projectId),
        eq(usageDaily.dimension, 'all'),
        gte(usageDaily.day, dayOf(from)),
      ),
    );
  return BigInt(row?.cost ?? '0');
}
