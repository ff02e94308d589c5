import { and, count, eq, inArray, lt, sql } from 'drizzle-orm';
import { z } from 'zod';
import { type ChatTurn, type ContentBlock, ModelError, type ToolSpec } from '../../ai/provider';
import type { ModelRegistry } from '../../ai/registry';
import type { Logger } from '../../context';
import type { DatabaseHandle, Db } from '../../db/client';
import type { EventBus } from '../../events/bus';
import { AppError } from '../../lib/errors';
import { costMicro, formatUsdc } from '../../lib/money';
import { type AgentRow, agents } from '../agents/agents.table';
import { compileSchema, validationErrors } from '../agents/schema';
import { builtinTool, handoffToolName, ToolError } from '../agents/tools/registry';
import type { Gateway } from '../gateway/gateway';
import { type RunEvent, runTopic } from './runs.dto';
import { type RunRow, runSteps, runs } from './runs.table';
import { flattenTools } from './transcript';

const CANCEL_CHANNEL = 'smartspace_run_cancel';
const HEARTBEAT_MS = 5_000;
export const STALE_RUN_MS = 30_000;
const MAX_RESUMES = 2;
const POLL_MS = 2_000;
const SHUTDOWN = 'shutdown';

export interface RunnerDeps {
  db: Db;
  bus: EventBus;
  gateway: Gateway;
  models: ModelRegistry;
  log: Logger;
  maxConcurrentPerProject: number;
  maxOutputTokens: number;
}

class RunFailure extends Error {
  constructor(
    readonly appCode: string,
    message: string,
  ) {
    super(message);
  }
}

/** Pulls the JSON document out of a final answer ("```json ... ```" fences allowed). */
function parseJsonAnswer(text: string): { ok: true; value: unknown } | { ok: false } {
  // No \s* before the lazy group: the two overlap, which made an unclosed fence followed by
  // a long run of spaces quadratic (the trim below drops the same whitespace).
  const fenced = /```(?:json)?([\s\S]*?)```/.exec(text);
  const candidate = (fenced?.[1] ?? text).trim();
  try {
    return { ok: true, value: JSON.parse(candidate) };
  } catch {
    return { ok: false };
  }
}

/**
 * Executes agent runs: claims queued runs up to a per-project concurrency limit (a
 * transaction under a per-project advisory lock, so the limit holds across instances), then
 * runs the tool-use loop through the gateway, persisting every step and publishing every
 * progress event to the run's topic. The transcript is saved after each step, so a run whose
 * process died is resumed from its last completed step (at most MAX_RESUMES times).
 */
export async function createRunner(handle: DatabaseHandle, deps: RunnerDeps) {
  const { db } = deps;
  const active = new Map<string, { abort: AbortController; done: Promise<void> }>();
  let closed = false;
  const unlisten = await handle.listen(CANCEL_CHANNEL, (runId) =>
    active.get(runId)?.abort.abort('cancel'),
  );

  const publish = (runId: string, event: RunEvent, tx: Db = db) => {
    const { type, ...payload } = event;
    return deps.bus.publish({ topic: runTopic(runId), type, payload, db: tx });
  };

  async function claim(projectId?: string): Promise<RunRow[]> {
    const projectIds = projectId
      ? [projectId]
      : (
          await db
            .selectDistinct({ projectId: runs.projectId })
            .from(runs)
            .where(eq(runs.status, 'queued'))
            .limit(100)
        ).map((r) => r.projectId);
    const claimed: RunRow[] = [];
    for (const p of projectIds) {
      const rows = await db.transaction(async (tx) => {
        await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`runs:${p}`}))`);
        const [running] = await tx
          .select({ n: count() })
          .from(runs)
          .where(and(eq(runs.projectId, p), eq(runs.status, 'running')));
        const free = deps.maxConcurrentPerProject - (running?.n ?? 0);
        if (free <= 0) return [];
        const queued = await tx
          .select({ id: runs.id })
          .from(runs)
          .where(and(eq(runs.projectId, p), eq(runs.status, 'queued')))
          .orderBy(runs.createdAt, runs.id)
          .limit(free);
        if (queued.length === 0) return [];
        return tx
          .update(runs)
          .set({
            status: 'running',
            startedAt: sql`coalesce(${runs.startedAt}, now())`,
            heartbeatAt: new Date(),
          })
          .where(
            inArray(
              runs.id,
              queued.map((q) => q.id),
            ),
          )
          .returning();
      });
      claimed.push(...rows);
    }
    return claimed;
  }

  function kick(projectId?: string) {
    if (closed) return;
    void claim(projectId)
      .then((rows) => {
        for (const run of rows) execute(run);
      })
      .catch((err: unknown) => deps.log.error({ err }, 'claiming runs failed'));
  }

  function execute(run: RunRow) {
    const abort = new AbortController();
    const done = loop(run, abort.signal)
      .catch((err: unknown) => deps.log.error({ err, runId: run.id }, 'run worker crashed'))
      .finally(() => {
        active.delete(run.id);
        kick(run.projectId);
      });
    active.set(run.id, { abort, done });
  }

  /** Ends a run once: only a run still 'running' changes (a sweeper may have got there). */
  async function finish(run: RunRow, patch: Partial<typeof runs.$inferInsert>, event: RunEvent) {
    await db.transaction(async (tx) => {
      const [row] = await tx
        .update(runs)
        .set({ ...patch, finishedAt: new Date(), heartbeatAt: null })
        .where(and(eq(runs.id, run.id), eq(runs.status, 'running')))
        .returning({ id: runs.id });
      if (row) await publish(run.id, event, tx);
    });
  }

  async function loop(run: RunRow, signal: AbortSignal) {
    const heartbeat = setInterval(() => {
      void db
        .update(runs)
        .set({ heartbeatAt: new Date() })
        .where(and(eq(runs.id, run.id), eq(runs.status, 'running')))
        .catch(() => {});
    }, HEARTBEAT_MS);
    heartbeat.unref();
    const transcript: ChatTurn[] = [...run.transcript];
    let activeAgentId = run.activeAgentId;
    const totals = { inputTokens: run.inputTokens, outputTokens: run.outputTokens, cost: run.cost };
    const [existing] = await db
      .select({ n: count() })
      .from(runSteps)
      .where(eq(runSteps.runId, run.id));
    let stepIndex = existing?.n ?? 0;
    let modelSteps = 0;
    let corrected = false;

    const saveStep = (step: Omit<typeof runSteps.$inferInsert, 'runId' | 'index'>) =>
      db.insert(runSteps).values({ ...step, runId: run.id, index: stepIndex++ });
    const saveState = () =>
      db
        .update(runs)
        .set({ transcript, activeAgentId, ...totals })
        .where(eq(runs.id, run.id));

    try {
      await publish(run.id, { type: 'run.started' });
      const [entry] = await db.select().from(agents).where(eq(agents.id, run.agentId));
      const maxSteps = entry?.maxSteps ?? 10;
      for (;;) {
        if (signal.aborted) throw new RunFailure('run.cancelled', 'cancelled');
        const [agent] = await db.select().from(agents).where(eq(agents.id, activeAgentId));
        if (agent?.status !== 'active' || agent.projectId !== run.projectId) {
          throw new RunFailure(
            'run.agent_unavailable',
            'The active agent was deleted or deactivated',
          );
        }
        if (modelSteps >= maxSteps) {
          throw new RunFailure(
            'run.max_steps',
            `The run reached its limit of ${maxSteps} model steps`,
          );
        }
        modelSteps++;
        const targets = agent.handoffs.length
          ? await db
              .select()
              .from(agents)
              .where(
                and(
                  eq(agents.projectId, run.projectId),
                  inArray(agents.id, agent.handoffs),
                  eq(agents.status, 'active'),
                ),
              )
          : [];
        const outcome = await modelStep({ run, agent, targets, transcript, signal });
        totals.inputTokens += outcome.usage.inputTokens;
        totals.outputTokens += outcome.usage.outputTokens;
        totals.cost += outcome.cost;

        if (outcome.toolUses.length === 0) {
          transcript.push({ role: 'assistant', content: outcome.text });
          let output: unknown = outcome.text;
          if (agent.outputSchema) {
            const validate = compileSchema(agent.outputSchema);
            const parsed = parseJsonAnswer(outcome.text);
            const problem = !parsed.ok
              ? 'the answer is not valid JSON'
              : validate(parsed.value)
                ? null
                : validationErrors(validate);
            if (problem) {
              if (corrected) {
                throw new RunFailure(
                  'run.output_invalid',
                  `The final answer does not match the output schema: ${problem}`,
                );
              }
              // One chance to correct itself.
              corrected = true;
              transcript.push({
                role: 'user',
                content: `Your answer does not match the required JSON Schema (${problem}). Reply with only a JSON document that matches it.`,
              });
              await saveState();
              continue;
            }
            output = parsed.ok ? parsed.value : null;
          }
          await saveState();
          await finish(
            run,
            { status: 'succeeded', output, transcript, activeAgentId, ...totals },
            { type: 'run.completed', output },
          );
          return;
        }

        transcript.push({
          role: 'assistant',
          content: [
            ...(outcome.text ? [{ type: 'text' as const, text: outcome.text }] : []),
            ...outcome.toolUses.map((t) => ({
              type: 'tool_use' as const,
              id: t.id,
              name: t.name,
              input: t.input,
            })),
          ],
        });
        const results: ContentBlock[] = [];
        for (const use of outcome.toolUses) {
          const result = await runTool({ run, agent, targets, use, signal });
          if (result.handoffTo) activeAgentId = result.handoffTo;
          results.push({
            type: 'tool_result',
            toolUseId: use.id,
            content: result.content,
            isError: result.isError,
          });
        }
        transcript.push({ role: 'user', content: results });
        await saveState();
      }
    } catch (err) {
      const shutdown = signal.reason === SHUTDOWN;
      if (shutdown) {
        // Back to the queue with the transcript so far: another instance (or this one after
        // a restart) resumes from the last completed step.
        await db
          .update(runs)
          .set({ status: 'queued', transcript, activeAgentId, ...totals, heartbeatAt: null })
          .where(and(eq(runs.id, run.id), eq(runs.status, 'running')));
        return;
      }
      if (signal.aborted) {
        await finish(
          run,
          { status: 'cancelled', transcript, ...totals },
          { type: 'run.cancelled' },
        );
        return;
      }
      const appCode =
        err instanceof RunFailure
          ? err.appCode
          : err instanceof AppError || err instanceof ModelError
            ? err.code
            : 'run.failed';
      const message =
        err instanceof Error && appCode !== 'run.failed' ? err.message : 'The run failed';
      if (appCode === 'run.failed') deps.log.error({ err, runId: run.id }, 'run failed');
      await finish(
        run,
        { status: 'failed', error: { appCode, message }, transcript, ...totals },
        { type: 'run.failed', appCode, message },
      );
    } finally {
      clearInterval(heartbeat);
    }

    async function modelStep(opts: {
      run: RunRow;
      agent: AgentRow;
      targets: AgentRow[];
      transcript: ChatTurn[];
      signal: AbortSignal;
    }) {
      const { agent } = opts;
      const step = stepIndex;
      await publish(run.id, { type: 'step.started', step, agentId: agent.id });
      const startedAt = new Date();
      const tools: ToolSpec[] = [
        ...agent.tools.flatMap((name) => {
          const t = builtinTool(name);
          return t
            ? [
                {
                  name: t.name,
                  description: t.description,
                  inputSchema: z.toJSONSchema(t.input, { io: 'input' }) as Record<string, unknown>,
                },
              ]
            : [];
        }),
        ...opts.targets.map((t) => ({
          name: handoffToolName(t),
          description: `Hand the task over to the agent "${t.name}"${t.description ? `: ${t.description}` : ''}. It continues with the whole conversation.`,
          inputSchema: { type: 'object', properties: { reason: { type: 'string' } } },
        })),
      ];
      const system = agent.outputSchema
        ? `${agent.instructions}\n\nWhen you give your final answer, reply with only a JSON document matching this JSON Schema:\n${JSON.stringify(agent.outputSchema)}`
        : agent.instructions;
      let text = '';
      const toolUses: { id: string; name: string; input: unknown }[] = [];
      let usage = { inputTokens: 0, outputTokens: 0 };
      let publishing: Promise<unknown> = Promise.resolve();
      for await (const ev of deps.gateway.stream({
        projectId: run.projectId,
        userId: run.createdBy,
        agentId: agent.id,
        runId: run.id,
        source: 'run',
        model: agent.model,
        system,
        messages: tools.length > 0 ? opts.transcript : flattenTools(opts.transcript),
        maxOutputTokens: deps.maxOutputTokens,
        tools: tools.length > 0 ? tools : undefined,
        signal: opts.signal,
      })) {
        if (ev.type === 'delta') {
          text += ev.text;
          const delta = ev.text;
          publishing = publishing.then(() => publish(run.id, { type: 'text.delta', text: delta }));
        } else if (ev.type === 'tool_use') {
          toolUses.push({ id: ev.id, name: ev.name, input: ev.input });
        } else {
          usage = ev.usage;
        }
      }
      await publishing;
      const info = deps.models.get(agent.model);
      const cost = info
        ? costMicro({
            ...usage,
            inputPricePerMTok: info.inputPricePerMTok,
            outputPricePerMTok: info.outputPricePerMTok,
          })
        : 0n;
      await publish(run.id, { type: 'usage', ...usage, cost: formatUsdc(cost) });
      await saveStep({
        agentId: agent.id,
        kind: 'model',
        input: { model: agent.model, messages: opts.transcript.length },
        output: { text, toolCalls: toolUses },
        inputTokens: usage.inputTokens,
        outputTokens: usage.outputTokens,
        cost,
        startedAt,
        finishedAt: new Date(),
      });
      return { text, toolUses, usage, cost };
    }

    async function runTool(opts: {
      run: RunRow;
      agent: AgentRow;
      targets: AgentRow[];
      use: { id: string; name: string; input: unknown };
      signal: AbortSignal;
    }): Promise<{ content: string; isError: boolean; handoffTo?: string }> {
      const { use, agent } = opts;
      const startedAt = new Date();
      const target = opts.targets.find((t) => handoffToolName(t) === use.name);
      if (target) {
        await publish(run.id, { type: 'handoff', fromAgentId: agent.id, toAgentId: target.id });
        await saveStep({
          agentId: agent.id,
          kind: 'handoff',
          input: use.input,
          output: { toAgentId: target.id },
          startedAt,
          finishedAt: new Date(),
        });
        return { content: `Handed over to ${target.name}.`, isError: false, handoffTo: target.id };
      }
      await publish(run.id, { type: 'tool.called', tool: use.name, input: use.input });
      let output: unknown;
      let error: string | null = null;
      const tool = agent.tools.includes(use.name) ? builtinTool(use.name) : undefined;
      if (!tool) {
        error = `Unknown tool "${use.name}". Available: ${[...agent.tools, ...opts.targets.map(handoffToolName)].join(', ') || 'none'}`;
      } else {
        const parsed = tool.input.safeParse(use.input);
        if (!parsed.success) {
          error = `Invalid input for ${use.name}: ${z.prettifyError(parsed.error)}`;
        } else {
          try {
            output = await tool.run(parsed.data, { db, projectId: run.projectId, runId: run.id });
          } catch (e) {
            if (!(e instanceof ToolError))
              deps.log.error({ err: e, tool: use.name, runId: run.id }, 'tool failed');
            error = e instanceof ToolError ? e.message : `The tool ${use.name} failed`;
          }
        }
      }
      await publish(
        run.id,
        error
          ? { type: 'tool.result', tool: use.name, output: error, isError: true }
          : { type: 'tool.result', tool: use.name, output },
      );
      await saveStep({
        agentId: agent.id,
        kind: 'tool',
        input: use.input,
        output: error ? null : output,
        error,
        startedAt,
        finishedAt: new Date(),
      });
      // Errors go back to the model as tool errors: it may correct its input.
      return { content: error ?? JSON.stringify(output), isError: error !== null };
    }
  }

  const poll = setInterval(() => kick(), POLL_MS);
  poll.unref();

  return {
    /** Looks for queued runs of a project now (after runs.start). */
    kick,

    /** Cancels wherever the run executes: here directly, elsewhere through NOTIFY. */
    async cancel(runId: string) {
      const local = active.get(runId);
      if (local) local.abort.abort('cancel');
      else await db.execute(sql`select pg_notify(${CANCEL_CHANNEL}, ${runId})`);
    },

    /**
     * Runs left 'running' by a dead process (stale heartbeat) go back to the queue to resume
     * from their last completed step, or fail once they have been resumed too often.
     */
    async sweep(staleMs = STALE_RUN_MS): Promise<number> {
      const stale = await db
        .select()
        .from(runs)
        .where(
          and(eq(runs.status, 'running'), lt(runs.heartbeatAt, new Date(Date.now() - staleMs))),
        );
      let n = 0;
      for (const r of stale) {
        if (active.has(r.id)) continue;
        if (r.resumes >= MAX_RESUMES) {
          await finish(
            r,
            {
              status: 'failed',
              error: {
                appCode: 'run.interrupted',
                message: 'The run was interrupted too many times',
              },
            },
            {
              type: 'run.failed',
              appCode: 'run.interrupted',
              message: 'The run was interrupted too many times',
            },
          );
        } else {
          await db
            .update(runs)
            .set({ status: 'queued', resumes: r.resumes + 1, heartbeatAt: null })
            .where(and(eq(runs.id, r.id), eq(runs.status, 'running')));
        }
        n++;
      }
      if (n > 0) kick();
      return n;
    },

    get running() {
      return active.size;
    },

    /** Stops claiming; runs in flight go back to the queue with their progress. */
    async close() {
      closed = true;
      clearInterval(poll);
      await unlisten();
      const running = [...active.values()];
      for (const r of running) r.abort.abort(SHUTDOWN);
      await Promise.allSettled(running.map((r) => r.done));
    },
  };
}

export type Runner = Awaited<ReturnType<typeof createRunner>>;
