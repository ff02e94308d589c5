import { sql } from 'drizzle-orm';
import {
  bigint,
  date,
  index,
  integer,
  pgEnum,
  pgTable,
  text,
  timestamp,
  unique,
  uuid,
} from 'drizzle-orm/pg-core';

export const requestSource = pgEnum('request_source', ['chat', 'run', 'api']);
export const requestStatus = pgEnum('request_status', [
  'in_progress',
  'succeeded',
  'failed',
  'cancelled',
  'denied',
]);

/**
 * One row per provider call (and per denied call): who, what, how much, how long. No
 * prompt or reply text. No foreign keys: usage history outlives deleted agents or chats.
 * While in progress it also holds the call's reservation, so a crash leaves a row the
 * sweeper can release.
 */
export const apiRequests = pgTable(
  'api_requests',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    projectId: uuid('project_id').notNull(),
    userId: uuid('user_id'),
    // The project API key the call was made with; null for a person's own calls.
    keyId: uuid('key_id'),
    agentId: uuid('agent_id'),
    runId: uuid('run_id'),
    conversationId: uuid('conversation_id'),
    source: requestSource('source').notNull(),
    model: text('model').notNull(),
    status: requestStatus('status').notNull(),
    errorCode: text('error_code'),
    inputTokens: integer('input_tokens').notNull().default(0),
    outputTokens: integer('output_tokens').notNull().default(0),
    // Of input_tokens: written to / read from the prompt cache (priced apart).
    cacheWriteTokens: integer('cache_write_tokens').notNull().default(0),
    cacheReadTokens: integer('cache_read_tokens').notNull().default(0),
    cost: bigint('cost', { mode: 'bigint' }).notNull().default(sql`0`),
    reserved: bigint('reserved', { mode: 'bigint' }).notNull().default(sql`0`),
    // The part of `reserved` held on the prepaid balance (0 when billing is off or the model
    // is free): a sweeper releases exactly this, whatever its own billing mode.
    balanceHeld: bigint('balance_held', { mode: 'bigint' }).notNull().default(sql`0`),
    latencyMs: integer('latency_ms'),
    createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    finishedAt: timestamp('finished_at', { withTimezone: true, precision: 3 }),
    heartbeatAt: timestamp('heartbeat_at', { withTimezone: true, precision: 3 }),
  },
  (t) => [
    // Summaries by model, agent, member or key read usage_daily; only the partial days at a
    // range's ends read calls, by project and time.
    index('api_requests_project_time_idx').on(t.projectId, t.createdAt),
    index('api_requests_in_progress_idx').on(t.status, t.heartbeatAt),
  ],
);

/** Which budget periods a call's reservation holds, to settle or release exactly those. */
export const apiRequestHolds = pgTable(
  'api_request_holds',
  {
    requestId: uuid('request_id')
      .notNull()
      .references(() => apiRequests.id, { onDelete: 'cascade' }),
    limitId: uuid('limit_id').notNull(),
    periodStart: timestamp('period_start', { withTimezone: true, precision: 3 }).notNull(),
    amount: bigint('amount', { mode: 'bigint' }).notNull(),
  },
  (t) => [index('api_request_holds_request_idx').on(t.requestId)],
);

/**
 * Finished calls summed per project and UTC day of their start, once per dimension
 * usage.summary groups by: `all` (the day's totals; key null), `model`, `agent`, `member` and
 * `key` (the key is that column's value, null when the call had none). A summary then reads
 * one row per day and key instead of every call. Written in the same statement as the calls'
 * finished rows (rollUpFrom in usage.service.ts).
 */
export const usageDaily = pgTable(
  'usage_daily',
  {
    projectId: uuid('project_id').notNull(),
    day: date('day', { mode: 'string' }).notNull(),
    dimension: text('dimension').notNull(),
    key: text('key'),
    requests: bigint('requests', { mode: 'number' }).notNull(),
    inputTokens: bigint('input_tokens', { mode: 'number' }).notNull(),
    outputTokens: bigint('output_tokens', { mode: 'number' }).notNull(),
    cacheWriteTokens: bigint('cache_write_tokens', { mode: 'number' }).notNull(),
    cacheReadTokens: bigint('cache_read_tokens', { mode: 'number' }).notNull(),
    cost: bigint('cost', { mode: 'bigint' }).notNull(),
  },
  (t) => [unique('usage_daily_key').on(t.projectId, t.dimension, t.day, t.key).nullsNotDistinct()],
);
