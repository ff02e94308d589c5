/**
 * `pnpm db:explain`: are the list queries indexed at a million rows?
 *
 * 1. Clones a migrated scratch database (createTestDatabase; TEST_DATABASE_URL, default the
 *    local postgres) and seeds about EXPLAIN_ROWS rows (default 1,000,000) across the tables
 *    the list procedures read (seed.ts), one hot project holding half of each.
 * 2. Calls every list procedure through the real router (createApi + createCaller), first
 *    page and a page from a cursor in the middle, plus the event log's resume read, and
 *    captures the SQL each one sends with its parameters (postgres.js's `debug` hook).
 * 3. Runs `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` on each captured SELECT and prints, per
 *    statement: plan root, Seq Scans of big tables (> 10,000 rows), rows read vs returned,
 *    execution time. Details go to bench/explain/report.json.
 *
 * Exits 1 when a statement seq-scans a big table or takes longer than EXPLAIN_MAX_MS (50).
 * The scratch database is dropped at the end (kept with EXPLAIN_KEEP=1, to try indexes on).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createApi, createCaller } from '@smartspace/api';
import { createTestDatabase, testConfig } from '@smartspace/api/testing';
import postgres, { type Sql } from 'postgres';
import { markdownTable } from '../report';
import { type Explained, type PlanSummary, summarise } from './plan';
import { seed, uuidOf } from './seed';

const TOTAL = Number(process.env.EXPLAIN_ROWS ?? 1_000_000);
const MAX_MS = Number(process.env.EXPLAIN_MAX_MS ?? 50);
const BIG_TABLE = 10_000;
/** EXPLAIN_KEEP=1 leaves the seeded database in place (drop it yourself afterwards). */
const KEEP = process.env.EXPLAIN_KEEP === '1';
const HELP_PROJECT_ID = '5e1f0000-0000-4000-8000-000000000001';
/** events/stream.ts BACKLOG_PAGE: the resume read's page. */
const BACKLOG_PAGE = 500;
const REPORT = fileURLToPath(new URL('report.json', import.meta.url));

process.env.TEST_DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/postgres';

interface Captured {
  call: string;
  sql: string;
  params: unknown[];
}

type Caller = ReturnType<typeof createCaller>;

const log = (line: string) => process.stdout.write(`${line}\n`);
const cursorOf = (at: Date, id: string) =>
  Buffer.from(JSON.stringify([at.toISOString(), id])).toString('base64url');

async function main(): Promise<number> {
  const started = performance.now();
  const database = await createTestDatabase();
  if (!database.url) throw new Error('needs PostgreSQL');
  // Seeding and EXPLAIN on a connection of their own, without the pool's statement_timeout.
  const own = postgres(database.url, { max: 1, onnotice: () => {} });
  const api = await createApi({ config: testConfig(), database, migrate: false });
  try {
    const caller = (token: string): Caller =>
      createCaller(api.createContext({ token, ip: '127.0.0.1', requestId: randomUUID() }));
    // The first user of a database is a platform admin: audit, users and payments.unmatched.
    const admin = await createCaller(
      api.createContext({ token: null, ip: '127.0.0.1', requestId: randomUUID() }),
    ).auth.register({
      email: 'explain.admin@example.com',
      password: 'correct horse battery staple',
      name: 'Explain Admin',
    });
    const c = caller(admin.accessToken);
    const hot = await c.projects.create({ name: 'Hot project' });
    // The help project is made on first use; its conversations are seeded below.
    const help = await c.help.conversations.create({ title: 'Mine' });

    log(`Seeding about ${TOTAL.toLocaleString('en-US')} rows into ${database.url}`);
    const seeded = await seed(
      own,
      { hotProjectId: hot.id, adminId: admin.user.id, helpProjectId: HELP_PROJECT_ID },
      TOTAL,
      log,
    );
    log(`Seeded in ${((performance.now() - started) / 1000).toFixed(1)} s`);

    const calls = await listCalls(own, c, api, {
      hot: hot.id,
      adminId: admin.user.id,
      helpConversationId: help.id,
      ...seeded,
    });
    const captured = await capture(api.database.db, calls);
    const results = await explainAll(own, captured);
    const failed = results.filter((r) => r.bigSeqScans.length > 0 || r.ms > MAX_MS);

    log('');
    log(
      markdownTable(
        [
          'call',
          'statement on',
          'plan root',
          'seq scan on big table',
          'rows read',
          'returned',
          'ms',
        ],
        [false, false, false, false, true, true, true],
        results.map((r) => [
          r.call,
          r.table,
          r.root,
          r.bigSeqScans.join(', ') || '—',
          `${r.rowsRead.toLocaleString('en-US')}${wasteful(r) ? ' (!)' : ''}`,
          r.rowsReturned.toLocaleString('en-US'),
          r.ms.toFixed(2),
        ]),
      ),
    );
    writeFileSync(
      REPORT,
      `${JSON.stringify({ rows: TOTAL, maxMs: MAX_MS, counts: seeded.counts, results }, null, 2)}\n`,
    );
    log('');
    log(`${results.length} statements from ${calls.length} calls; details in ${REPORT}`);
    const waste = results.filter(wasteful);
    if (waste.length > 0) {
      log(
        `(!) ${waste.length} read over ${WASTE_RATIO}× the rows they return (a filter, or a ` +
          'cursor condition the index cannot bound): not a failure, but they grow with the data.',
      );
    }
    if (failed.length > 0) {
      log(
        `${failed.length} over the bar (seq scan of a table > ${BIG_TABLE} rows, or > ${MAX_MS} ms):`,
      );
      for (const r of failed) {
        log(
          `  ${r.call}: ${r.bigSeqScans.length ? `Seq Scan on ${r.bigSeqScans.join(', ')}` : ''} ${r.ms.toFixed(1)} ms`,
        );
      }
    } else {
      log('Every list statement uses an index and answers within the bound.');
    }
    log(`Total ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return failed.length > 0 ? 1 : 0;
  } finally {
    await api.close();
    await own.end({ timeout: 5 });
    if (KEEP) log(`Kept the scratch database for manual EXPLAINs: ${database.url}`);
    else await database.close();
  }
}

/** A page that reads this many times the rows it returns, past WASTE_MIN rows, is marked. */
const WASTE_RATIO = 50;
const WASTE_MIN = 1_000;

/** An aggregate reads its whole range by design; anything else should read about what it returns. */
function wasteful(r: PlanSummary): boolean {
  return (
    !r.root.includes('Aggregate') &&
    r.rowsRead > WASTE_MIN &&
    r.rowsRead > WASTE_RATIO * Math.max(1, r.rowsReturned)
  );
}

interface Call {
  name: string;
  run: () => Promise<unknown>;
}

/** Every list read, first page and a page from a cursor in the middle. */
async function listCalls(
  own: Sql,
  c: Caller,
  api: Awaited<ReturnType<typeof createApi>>,
  ids: {
    hot: string;
    adminId: string;
    helpConversationId: string;
    hotConversationId: string;
    hotAgentId: string;
    hotRunId: string;
  },
): Promise<Call[]> {
  const projectId = ids.hot;
  /** The (created_at, id) key halfway down a newest-first (or oldest-first) list. */
  const middle = async (table: string, where: string, direction: 'asc' | 'desc' = 'desc') => {
    const [{ n }] = (await own.unsafe(
      `select count(*)::int as n from ${table} where ${where}`,
    )) as [{ n: number }];
    const [row] = await own.unsafe<{ created_at: Date; id: string }[]>(
      `select created_at, id from ${table} where ${where}
       order by created_at ${direction}, id ${direction} offset ${Math.floor(n / 2)} limit 1`,
    );
    if (!row) throw new Error(`${table}: empty`);
    return cursorOf(row.created_at, row.id);
  };
  const hotIs = `project_id = '${projectId}'`;
  const [auditMiddle] = await own.unsafe<{ id: string }[]>(
    `select id::text from audit_events order by id offset (select count(*) / 2 from audit_events) limit 1`,
  );
  const [hotAuditMiddle] = await own.unsafe<{ id: string }[]>(
    `select id::text from audit_events where ${hotIs} order by id
     offset (select count(*) / 2 from audit_events where ${hotIs}) limit 1`,
  );
  const topic = `conversation:${ids.hotConversationId}`;
  const [eventMiddle] = await own.unsafe<{ id: string }[]>(
    `select id::text from events where topic = '${topic}' order by id
     offset (select count(*) / 2 from events where topic = '${topic}') limit 1`,
  );
  const [actor] = await own.unsafe<{ id: string }[]>(`select ${uuidOf('user', '7')}::text as id`);
  const now = Date.now();
  const day = 86_400_000;
  const from30 = new Date(now - 30 * day).toISOString();
  const nowIso = new Date(now).toISOString();

  const cursors = {
    projects: await middle(
      'projects',
      `id in (select project_id from project_members where user_id = '${ids.adminId}')`,
    ),
    users: await middle('users', 'true', 'asc'),
    conversations: await middle('conversations', hotIs),
    messages: await middle('messages', `conversation_id = '${ids.hotConversationId}'`, 'asc'),
    runs: await middle('runs', hotIs),
    requests: await middle('api_requests', hotIs),
    files: await middle('files', hotIs),
    payments: await middle('payments', hotIs),
    unmatched: await middle('payments', `status = 'unmatched'`),
    help: await middle(
      'conversations',
      `project_id = '${HELP_PROJECT_ID}' and created_by = '${ids.adminId}'`,
    ),
  };
  const bus = api.deps.bus;
  const call = (name: string, run: () => Promise<unknown>): Call => ({ name, run });
  return [
    call('projects.list', () => c.projects.list({})),
    call('projects.list (cursor)', () => c.projects.list({ cursor: cursors.projects })),
    call('projects.members.list', () => c.projects.members.list({ projectId })),
    call('users.list', () => c.users.list({})),
    call('users.list (cursor)', () => c.users.list({ cursor: cursors.users })),
    call('users.list (query)', () => c.users.list({ query: 'user 4242' })),
    call('agents.list', () => c.agents.list({ projectId })),
    call('apiKeys.list', () => c.apiKeys.list({ projectId })),
    call('mcp.servers.list', () => c.mcp.servers.list({ projectId })),
    call('wallets.list', () => c.wallets.list()),
    call('budgets.get', () => c.budgets.get({ projectId })),
    call('chat.conversations.list', () => c.chat.conversations.list({ projectId })),
    call('chat.conversations.list (cursor)', () =>
      c.chat.conversations.list({ projectId, cursor: cursors.conversations }),
    ),
    call('chat.messages.list', () =>
      c.chat.messages.list({ conversationId: ids.hotConversationId }),
    ),
    call('chat.messages.list (cursor)', () =>
      c.chat.messages.list({ conversationId: ids.hotConversationId, cursor: cursors.messages }),
    ),
    call('runs.list', () => c.runs.list({ projectId })),
    call('runs.list (cursor)', () => c.runs.list({ projectId, cursor: cursors.runs })),
    call('runs.list (agentId)', () => c.runs.list({ projectId, agentId: ids.hotAgentId })),
    call('usage.requests', () => c.usage.requests({ projectId })),
    call('usage.requests (cursor)', () =>
      c.usage.requests({ projectId, cursor: cursors.requests }),
    ),
    call('usage.summary (day, 30 days)', () =>
      c.usage.summary({ projectId, from: from30, to: nowIso, groupBy: 'day' }),
    ),
    call('usage.summary (model, 30 days)', () =>
      c.usage.summary({ projectId, from: from30, to: nowIso, groupBy: 'model' }),
    ),
    call('audit.list', () => c.audit.list({})),
    call('audit.list (cursor)', () => c.audit.list({ cursor: auditMiddle?.id })),
    call('audit.list (project)', () => c.audit.list({ projectId })),
    call('audit.list (project, cursor)', () =>
      c.audit.list({ projectId, cursor: hotAuditMiddle?.id }),
    ),
    call('audit.list (action)', () => c.audit.list({ action: 'member.added' })),
    call('audit.list (actor)', () => c.audit.list({ actorId: actor?.id })),
    call('audit.list (project, last day)', () =>
      c.audit.list({ projectId, from: new Date(now - day).toISOString(), to: nowIso }),
    ),
    call('files.list', () => c.files.list({ projectId })),
    call('files.list (cursor)', () => c.files.list({ projectId, cursor: cursors.files })),
    call('payments.list', () => c.payments.list({ projectId })),
    call('payments.list (cursor)', () => c.payments.list({ projectId, cursor: cursors.payments })),
    call('payments.unmatched', () => c.payments.unmatched({})),
    call('payments.unmatched (cursor)', () => c.payments.unmatched({ cursor: cursors.unmatched })),
    call('help.conversations.list', () => c.help.conversations.list({})),
    call('help.conversations.list (cursor)', () =>
      c.help.conversations.list({ cursor: cursors.help }),
    ),
    call('help.messages', () => c.help.messages({ conversationId: ids.helpConversationId })),
    call('events resume (bus.readAfter, from 0)', () => bus.readAfter(topic, 0, BACKLOG_PAGE)),
    call('events resume (bus.readAfter, middle)', () =>
      bus.readAfter(topic, Number(eventMiddle?.id ?? 0), BACKLOG_PAGE),
    ),
    call('events resume (bus.readAfter, run topic)', () =>
      bus.readAfter(`run:${ids.hotRunId}`, 0, BACKLOG_PAGE),
    ),
  ];
}

/**
 * Runs each call with postgres.js's `debug` hook set on the app's own pool: the SQL text and
 * the serialised parameters, exactly as sent. The hook runs in the caller's async context, so
 * statements of background jobs running meanwhile are not attributed to a call.
 */
async function capture(db: unknown, calls: Call[]): Promise<Captured[]> {
  const client = (db as { $client: Sql }).$client;
  const options = client.options as unknown as {
    debug?: (connection: number, query: string, params: unknown[]) => void;
  };
  const current = new AsyncLocalStorage<string>();
  const captured: Captured[] = [];
  options.debug = (_connection, query, params) => {
    const call = current.getStore();
    if (call) captured.push({ call, sql: query, params: [...params] });
  };
  try {
    for (const { name, run } of calls) {
      try {
        await current.run(name, run);
      } catch (err) {
        throw new Error(`${name} failed: ${(err as Error).message}`, { cause: err });
      }
    }
  } finally {
    options.debug = undefined;
  }
  return captured;
}

interface Result extends PlanSummary {
  call: string;
  /** The statement's first table (FROM). */
  table: string;
  sql: string;
  params: unknown[];
  plan: Explained;
}

/**
 * EXPLAIN ANALYZE of each SELECT, once to warm the cache and once measured. A statement
 * several calls send alike (the session and membership checks) is reported once.
 */
async function explainAll(own: Sql, captured: Captured[]): Promise<Result[]> {
  const sizes = await own.unsafe<{ relname: string; n: number }[]>(
    `select relname, greatest(reltuples, 0)::float8 as n from pg_class
     where relkind = 'r' and relnamespace = 'public'::regnamespace`,
  );
  const tableRows = new Map(sizes.map((s) => [s.relname, Number(s.n)]));
  const seen = new Set<string>();
  const results: Result[] = [];
  for (const q of captured) {
    if (!/^\s*(select|with)\b/i.test(q.sql)) continue;
    const key = `${q.sql}\n${JSON.stringify(q.params)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const statement = `explain (analyze, buffers, format json) ${q.sql}`;
    await own.unsafe(statement, q.params as never[]);
    const [row] = await own.unsafe<{ 'QUERY PLAN': Explained[] }[]>(statement, q.params as never[]);
    const plan = row?.['QUERY PLAN'][0];
    if (!plan) throw new Error(`no plan for ${q.sql}`);
    results.push({
      call: q.call,
      table: /\bfrom\s+"?(\w+)"?/i.exec(q.sql)?.[1] ?? '?',
      ...summarise(plan, tableRows, BIG_TABLE),
      sql: q.sql,
      params: q.params,
      plan,
    });
  }
  return results;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
