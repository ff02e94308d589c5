/**
 * Seeds about EXPLAIN_ROWS rows across the tables the list procedures read, in plain SQL
 * (`insert … select generate_series`), so a million rows take seconds rather than minutes.
 *
 * Ids are derived from the row number (a hash of `'conv-' || g`), so one table's rows can
 * point at another's without joins. Half of each per-project table belongs to one hot
 * project (the one the API calls read), the rest is spread over the other projects: the hot
 * project's slice is then as large as a busy tenant's, and its rows are interleaved with
 * everyone else's the way they are in production.
 */
import type { Sql } from 'postgres';

/** Share of each per-project table that belongs to the hot project. */
const HOT = 0.5;
/** Seeded rows are spread over this many days back from now. */
const DAYS = 90;

export interface SeedIds {
  hotProjectId: string;
  adminId: string;
  helpProjectId: string;
}

export interface Seeded {
  /** The conversation with the most messages (and the busiest event topic). */
  hotConversationId: string;
  /** An agent of the hot project with runs of its own. */
  hotAgentId: string;
  /** A run of the hot project with an event topic of its own. */
  hotRunId: string;
  /** Rows inserted, per table. */
  counts: Record<string, number>;
}

/** How many rows of each table, as shares of the total. */
function plan(total: number) {
  const n = (share: number, min = 1) => Math.max(min, Math.round(total * share));
  return {
    users: n(0.02, 50),
    projects: n(0.002, 10),
    agents: n(0.005, 20),
    conversations: n(0.05, 20),
    helpConversations: n(0.01, 10),
    messages: n(0.25, 100),
    runs: n(0.05, 20),
    runSteps: n(0.1, 20),
    apiRequests: n(0.2, 100),
    auditEvents: n(0.08, 100),
    events: n(0.15, 100),
    files: n(0.03, 20),
    payments: n(0.03, 20),
  };
}

/** A version-4-shaped uuid from a hash of the row number (the API validates uuids strictly). */
export const uuidOf = (prefix: string, g: string) =>
  `overlay(overlay(md5('${prefix}-' || ${g}) placing '4' from 13) placing '8' from 17)::uuid`;
/** Seeded time: row g of n, newest last, spread over DAYS. */
const at = (g: string, n: number) =>
  `now() - interval '1 minute' - ((${n} - ${g})::float8 / ${n}) * interval '${DAYS} days'`;

export async function seed(
  sql: Sql,
  ids: SeedIds,
  total: number,
  progress: (line: string) => void,
): Promise<Seeded> {
  const p = plan(total);
  const hot = `'${ids.hotProjectId}'::uuid`;
  const admin = `'${ids.adminId}'::uuid`;
  const help = `'${ids.helpProjectId}'::uuid`;
  /** Whether seeded row g is the hot project's: every other row, so its rows span all the time. */
  const isHot = (g: string) => `${g} % 100 < ${Math.round(HOT * 100)}`;
  /** Project of a seeded row: the hot one, else one of the others. */
  const projectOf = (g: string) =>
    `case when ${isHot(g)} then ${hot} else ${uuidOf('project', `((${g} % ${p.projects}) + 1)`)} end`;
  const userOf = (g: string) => uuidOf('user', `((${g} % ${p.users}) + 1)`);
  const hotAgents = Math.max(5, Math.round(p.agents * 0.02));
  const counts: Record<string, number> = {};

  const steps: [string, number, string][] = [
    [
      'users',
      p.users,
      `insert into users (id, email, name, password_hash, created_at)
       select ${uuidOf('user', 'g')}, 'seed.user.' || g || '@example.com', 'Seed User ' || g,
         'not-a-hash', ${at('g', p.users)}
       from generate_series(1, ${p.users}) g`,
    ],
    [
      'projects',
      p.projects,
      `insert into projects (id, name, created_at)
       select ${uuidOf('project', 'g')}, 'Seed project ' || g, ${at('g', p.projects)}
       from generate_series(1, ${p.projects}) g`,
    ],
    [
      'project_members',
      // Every seeded user in one project; 200 of them in the hot one; the admin in 60.
      p.users + Math.min(200, p.users) + Math.min(60, p.projects),
      `insert into project_members (project_id, user_id, role, created_at)
       select ${uuidOf('project', `((g % ${p.projects}) + 1)`)}, ${uuidOf('user', 'g')},
         (array['viewer','member','admin','owner'])[1 + g % 4]::project_role, ${at('g', p.users)}
       from generate_series(1, ${p.users}) g;
       insert into project_members (project_id, user_id, role)
       select ${hot}, ${uuidOf('user', 'g')}, 'member' from generate_series(1, ${Math.min(200, p.users)}) g;
       insert into project_members (project_id, user_id, role)
       select ${uuidOf('project', 'g')}, ${admin}, 'admin' from generate_series(1, ${Math.min(60, p.projects)}) g`,
    ],
    [
      'agents',
      p.agents + hotAgents,
      // Agent j belongs to project ((j - 1) % projects) + 1, so agent p is one of project p's.
      `insert into agents (id, project_id, name, instructions, model, created_at)
       select ${uuidOf('agent', 'g')}, ${uuidOf('project', `(((g - 1) % ${p.projects}) + 1)`)},
         'agent-' || g, 'Be helpful.', 'mock-model', ${at('g', p.agents)}
       from generate_series(1, ${p.agents}) g;
       insert into agents (id, project_id, name, instructions, model)
       select ${uuidOf('agent-hot', 'g')}, ${hot}, 'hot-agent-' || g, 'Be helpful.', 'mock-model'
       from generate_series(1, ${hotAgents}) g`,
    ],
    [
      'conversations',
      p.conversations + p.helpConversations,
      `insert into conversations (id, project_id, title, created_by, created_at)
       select ${uuidOf('conv', 'g')}, ${projectOf('g')}, 'Conversation ' || g,
         ${userOf('g')}, ${at('g', p.conversations)}
       from generate_series(1, ${p.conversations}) g;
       insert into conversations (id, project_id, title, grounded, created_by, created_at)
       select ${uuidOf('help-conv', 'g')}, ${help}, 'Help ' || g, true,
         case when g % 200 = 0 then ${admin} else ${userOf('g')} end, ${at('g', p.helpConversations)}
       from generate_series(1, ${p.helpConversations}) g`,
    ],
    [
      'messages',
      p.messages,
      // A tenth in conversation 1 (a long-running one), the rest spread over all of them.
      `insert into messages (conversation_id, role, content, model, created_at)
       select case when g % 10 = 0 then ${uuidOf('conv', '1')}
                   else ${uuidOf('conv', `((g % ${p.conversations}) + 1)`)} end,
         (case when g % 2 = 0 then 'user' else 'assistant' end)::message_role,
         repeat('message text ', 10 + g % 20), 'mock-model', ${at('g', p.messages)}
       from generate_series(1, ${p.messages}) g`,
    ],
    [
      'runs',
      p.runs,
      `insert into runs (id, project_id, agent_id, active_agent_id, input, status, created_at)
       select ${uuidOf('run', 'g')}, ${projectOf('g')},
         case when ${isHot('g')} then ${uuidOf('agent-hot', `((g % ${hotAgents}) + 1)`)}
              else ${uuidOf('agent', `((g % ${p.projects}) + 1)`)} end,
         case when ${isHot('g')} then ${uuidOf('agent-hot', `((g % ${hotAgents}) + 1)`)}
              else ${uuidOf('agent', `((g % ${p.projects}) + 1)`)} end,
         'Do the thing ' || g, 'succeeded', ${at('g', p.runs)}
       from generate_series(1, ${p.runs}) g`,
    ],
    [
      'run_steps',
      p.runSteps,
      `insert into run_steps (run_id, index, agent_id, kind, started_at, finished_at)
       select ${uuidOf('run', `((g % ${p.runs}) + 1)`)}, g / ${p.runs}, ${uuidOf('agent-hot', '1')},
         'model', ${at('g', p.runSteps)}, ${at('g', p.runSteps)}
       from generate_series(1, ${p.runSteps}) g`,
    ],
    [
      'api_requests',
      p.apiRequests,
      `insert into api_requests (project_id, user_id, agent_id, source, model, status,
         input_tokens, output_tokens, cost, latency_ms, created_at, finished_at)
       select ${projectOf('g')}, ${userOf('g')},
         case when g % 3 = 0 then ${uuidOf('agent-hot', `((g % ${hotAgents}) + 1)`)} end,
         (array['chat','run','api'])[1 + g % 3]::request_source,
         (array['claude-sonnet','claude-haiku','gpt-4o','gpt-4o-mini','mock-model'])[1 + g % 5],
         'succeeded', 100 + g % 900, 50 + g % 400, (g % 1000) * 10, 200 + g % 800,
         ${at('g', p.apiRequests)}, ${at('g', p.apiRequests)}
       from generate_series(1, ${p.apiRequests}) g`,
    ],
    [
      'usage_daily',
      p.apiRequests,
      // The calls summed per day and dimension, as the gateway keeps them (usage.summary).
      `insert into usage_daily (project_id, day, dimension, key, requests, input_tokens,
         output_tokens, cache_write_tokens, cache_read_tokens, cost)
       select r.project_id, (r.created_at at time zone 'UTC')::date, d.dimension, d.key, count(*),
         sum(r.input_tokens), sum(r.output_tokens), sum(r.cache_write_tokens),
         sum(r.cache_read_tokens), sum(r.cost)
       from api_requests r cross join lateral (values ('all', null), ('model', r.model),
         ('agent', r.agent_id::text), ('member', r.user_id::text), ('key', r.key_id::text))
         as d(dimension, key)
       group by 1, 2, 3, 4`,
    ],
    [
      'audit_events',
      p.auditEvents,
      // Interleaved (every third row the hot project's) and in time order, as the log grows.
      `insert into audit_events (at, actor_id, action, project_id, target, ip, metadata, prev_hash, hash)
       select ${at('g', p.auditEvents)}, ${userOf('g')},
         (array['auth.login','project.updated','member.added','apikey.created','file.uploaded',
                'agent.updated','budget.limit_set','payment.credited'])[1 + g % 8],
         case when g % 3 = 0 then ${hot} else ${uuidOf('project', `((g % ${p.projects}) + 1)`)} end,
         'target-' || g, '127.0.0.1', '{}'::jsonb, 'seed', 'seed'
       from generate_series(1, ${p.auditEvents}) g`,
    ],
    [
      'events',
      p.events,
      // A fifth on the hot conversation's topic, some on the hot run's, the rest spread.
      `insert into events (topic, type, payload, created_at)
       select case when g % 5 = 0 then 'conversation:' || ${uuidOf('conv', '1')}::text
                   when g % 50 = 1 then 'run:' || ${uuidOf('run', '1')}::text
                   when g % 2 = 0 then 'conversation:' || ${uuidOf('conv', `((g % ${p.conversations}) + 1)`)}::text
                   else 'run:' || ${uuidOf('run', `((g % ${p.runs}) + 1)`)}::text end,
         'reply.delta', jsonb_build_object('delta', 'chunk ' || g), ${at('g', p.events)}
       from generate_series(1, ${p.events}) g`,
    ],
    [
      'files',
      p.files,
      `insert into files (id, project_id, uploaded_by, name, mime_type, size, sha256, storage_key, created_at)
       select ${uuidOf('file', 'g')}, ${projectOf('g')}, ${userOf('g')}, 'file-' || g || '.txt',
         'text/plain', 1000 + g, md5('sha-' || g), 'seed/' || g, ${at('g', p.files)}
       from generate_series(1, ${p.files}) g`,
    ],
    [
      'payments',
      p.payments,
      // A fifth nobody has claimed (unmatched, no project); the rest credited.
      `insert into payments (chain_id, tx_hash, log_index, block_number, block_hash, token,
         from_address, to_address, amount, status, project_id, created_at)
       select 8453, '0x' || md5('tx-' || g) || md5('tx2-' || g), 0, 1000000 + g, '0x' || md5('b-' || g),
         '0xusdc', '0x' || substr(md5('from-' || g), 1, 40), '0xdeposit', 1000000 + g,
         (case when g % 5 = 0 then 'unmatched' else 'credited' end)::payment_status,
         case when g % 5 = 0 then null else ${projectOf('g')} end, ${at('g', p.payments)}
       from generate_series(1, ${p.payments}) g`,
    ],
  ];

  const all = steps.reduce((s, [, n]) => s + n, 0);
  let done = 0;
  for (const [table, n, statement] of steps) {
    const started = performance.now();
    await sql.unsafe(statement);
    done += n;
    counts[table] = n;
    progress(
      `  ${table.padEnd(16)} ${n.toLocaleString('en-US').padStart(9)} rows  ` +
        `${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s  ` +
        `(${Math.round((done / all) * 100)}% of ${all.toLocaleString('en-US')})`,
    );
  }
  const started = performance.now();
  // As autovacuum leaves a live database: statistics, and GIN indexes' pending lists merged
  // (rows inserted after a GIN index was built wait there, and make it look costly).
  await sql.unsafe('vacuum analyze');
  progress(`  vacuum analyze   ${((performance.now() - started) / 1000).toFixed(1)} s`);

  const [row] = await sql.unsafe<{ conv: string; agent: string; run: string }[]>(
    `select ${uuidOf('conv', '1')}::text as conv, ${uuidOf('agent-hot', '1')}::text as agent,
       ${uuidOf('run', '1')}::text as run`,
  );
  if (!row) throw new Error('no ids');
  return { hotConversationId: row.conv, hotAgentId: row.agent, hotRunId: row.run, counts };
}
