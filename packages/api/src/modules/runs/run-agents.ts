import { inArray, type SQL, sql } from 'drizzle-orm';
import type { Db } from '../../db/client';
import type { AgentRow } from '../agents/agents.service';
import { agents } from '../agents/agents.table';
import { RunFailure } from './run-failure';

/**
 * The agents a run's next model step uses: the active agent and the handoff targets it may
 * offer. Read once, then kept while they stay as they were: each round's commit returns
 * their stamp (`agentsStampSql`, in the statement that saves the round), and only a changed
 * stamp (an agent edited, deactivated or deleted) or a handoff makes the run read them again.
 */
export interface RunAgents {
  agent: AgentRow;
  targets: AgentRow[];
  /** The ids whose rows decide `agent` and `targets`: the agent and all its handoffs. */
  watch: string[];
  stamp: string;
}

/**
 * The same stamp as `agentsStampSql` from rows in hand: id, status and updatedAt (ms; every
 * write to an agent moves it) of each row found, in id order.
 */
function stampOf(rows: Pick<AgentRow, 'id' | 'status' | 'updatedAt'>[]): string {
  return rows
    .map((r) => ({ id: r.id, s: `${r.id}@${r.updatedAt.getTime()}:${r.status}` }))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((r) => r.s)
    .join(',');
}

/** SQL for the stamp of the agents `ids` as they are now (see `stampOf`). */
export function agentsStampSql(ids: string[]): SQL<string> {
  if (ids.length === 0) return sql<string>`''`;
  const list = sql.join(
    ids.map((id) => sql`${id}::uuid`),
    sql`, `,
  );
  return sql<string>`(select coalesce(string_agg(a.id::text || '@' ||
    (extract(epoch from a.updated_at) * 1000)::bigint::text || ':' || a.status::text,
    ',' order by a.id::text), '') from ${agents} a where a.id in (${list}))`;
}

/**
 * Reads the active agent and its targets; fails the run when the agent is gone, inactive or
 * in another project. `root` (the run's own agent, needed for maxSteps) comes in the same
 * read when it is another agent.
 */
export async function loadRunAgents(
  db: Db,
  projectId: string,
  activeAgentId: string,
  root?: string,
  /** Rows read moments ago (with the run's claim): used when they hold every id needed. */
  known: AgentRow[] = [],
): Promise<RunAgents & { root: AgentRow | undefined }> {
  const ids = root && root !== activeAgentId ? [activeAgentId, root] : [activeAgentId];
  const found = known.filter((r) => ids.includes(r.id));
  const rows =
    found.length === ids.length
      ? found
      : await db.select().from(agents).where(inArray(agents.id, ids));
  const agent = rows.find((r) => r.id === activeAgentId);
  if (agent?.status !== 'active' || agent.projectId !== projectId) {
    throw new RunFailure('run.agent_unavailable', 'The active agent was deleted or deactivated');
  }
  const watch = [agent.id, ...new Set(agent.handoffs.filter((h) => h !== agent.id))];
  const others =
    watch.length > 1
      ? await db
          .select()
          .from(agents)
          .where(inArray(agents.id, watch.slice(1)))
      : [];
  // Offered: the project's active agents among the handoffs (inactive or foreign ones are
  // watched all the same: activating one changes what is offered).
  const targets = others.filter((r) => r.projectId === projectId && r.status === 'active');
  return {
    agent,
    targets,
    watch,
    stamp: stampOf([agent, ...others]),
    root: rows.find((r) => r.id === (root ?? activeAgentId)),
  };
}
