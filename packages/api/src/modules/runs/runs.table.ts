import { sql } from 'drizzle-orm';
import {
  bigint,
  index,
  integer,
  jsonb,
  pgEnum,
  pgTable,
  text,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import type { ChatTurn } from '../../ai/provider';
import { ts } from '../../db/columns';
import { agents } from '../agents/agents.table';
import { projects } from '../projects/projects.table';
import type { RunErrorCode } from './runs.errors';

export const runStatus = pgEnum('run_status', [
  'queued',
  'running',
  // Paused until a person approves or rejects a step (run_approvals); holds no worker.
  'awaiting_approval',
  'succeeded',
  'failed',
  'cancelled',
]);

export const runs = pgTable(
  'runs',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    projectId: uuid('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    agentId: uuid('agent_id')
      .notNull()
      .references(() => agents.id, { onDelete: 'cascade' }),
    activeAgentId: uuid('active_agent_id').notNull(),
    input: text('input').notNull(),
    status: runStatus('status').notNull().default('queued'),
    output: jsonb('output').$type<unknown>(),
    error: jsonb('error').$type<{ appCode: RunErrorCode; message: string } | null>(),
    inputTokens: integer('input_tokens').notNull().default(0),
    outputTokens: integer('output_tokens').notNull().default(0),
    cost: bigint('cost', { mode: 'bigint' }).notNull().default(sql`0`),
    idempotencyKey: text('idempotency_key'),
    createdBy: uuid('created_by'),
    // The API key that started it, if one did: its model calls count against that key.
    createdByKey: uuid('created_by_key'),
    // Times the run was picked up again after its process died; bounded so a run that
    // crashes its worker cannot loop forever.
    resumes: integer('resumes').notNull().default(0),
    // The tool loop's conversation so far: what a resumed or inspected run needs.
    transcript: jsonb('transcript').$type<ChatTurn[]>().notNull().default([]),
    // A reply in a conversation with an agent: the run writes that reply (chat-mirror.ts).
    conversationId: uuid('conversation_id'),
    replyId: uuid('reply_id'),
    createdAt: ts('created_at').notNull().defaultNow(),
    startedAt: ts('started_at'),
    finishedAt: ts('finished_at'),
    heartbeatAt: ts('heartbeat_at'),
  },
  (t) => [
    index('runs_project_idx').on(t.projectId, t.createdAt, t.id),
    index('runs_status_idx').on(t.status, t.projectId, t.createdAt),
    // runs.list filtered by agent: only that agent's runs are read.
    index('runs_project_agent_idx').on(t.projectId, t.agentId, t.createdAt, t.id),
    uniqueIndex('runs_idempotency_idx').on(t.projectId, t.idempotencyKey),
    index('runs_reply_idx').on(t.replyId),
  ],
);

export const runStepKind = pgEnum('run_step_kind', ['model', 'tool', 'handoff']);

export const runSteps = pgTable(
  'run_steps',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    runId: uuid('run_id')
      .notNull()
      .references(() => runs.id, { onDelete: 'cascade' }),
    index: integer('index').notNull(),
    agentId: uuid('agent_id').notNull(),
    kind: runStepKind('kind').notNull(),
    input: jsonb('input').$type<unknown>(),
    output: jsonb('output').$type<unknown>(),
    error: text('error'),
    inputTokens: integer('input_tokens').notNull().default(0),
    outputTokens: integer('output_tokens').notNull().default(0),
    cost: bigint('cost', { mode: 'bigint' }).notNull().default(sql`0`),
    startedAt: ts('started_at').notNull(),
    finishedAt: ts('finished_at').notNull(),
  },
  (t) => [uniqueIndex('run_steps_run_index').on(t.runId, t.index)],
);

export const approvalStatus = pgEnum('run_approval_status', [
  'pending',
  'approved',
  'rejected',
  'expired',
  'cancelled',
]);

export const approvalKind = pgEnum('run_approval_kind', ['tool', 'model']);

/**
 * A step of a run that waits for a person: a call of a tool the agent marks requiresApproval,
 * or a model step whose worst case passes the policy's approvalCostThreshold. `stepKey` names
 * the step within the run (the tool call's id, or `model:<transcript length>`), so a resumed
 * run finds the decision for the step it is about to take.
 */
export const runApprovals = pgTable(
  'run_approvals',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    runId: uuid('run_id')
      .notNull()
      .references(() => runs.id, { onDelete: 'cascade' }),
    projectId: uuid('project_id').notNull(),
    stepKey: text('step_key').notNull(),
    kind: approvalKind('kind').notNull(),
    agentId: uuid('agent_id').notNull(),
    tool: text('tool'),
    input: jsonb('input').$type<unknown>(),
    cost: bigint('cost', { mode: 'bigint' }),
    status: approvalStatus('status').notNull().default('pending'),
    requestedAt: ts('requested_at').notNull().defaultNow(),
    expiresAt: ts('expires_at').notNull(),
    decidedBy: uuid('decided_by'),
    decidedAt: ts('decided_at'),
    note: text('note'),
  },
  (t) => [
    uniqueIndex('run_approvals_step').on(t.runId, t.stepKey),
    index('run_approvals_pending').on(t.status, t.expiresAt),
  ],
);

export type RunRow = typeof runs.$inferSelect;
export type RunApprovalRow = typeof runApprovals.$inferSelect;
export type RunStepRow = typeof runSteps.$inferSelect;
