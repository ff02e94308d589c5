/**
 * `pnpm bench`: every suite, or the one named by `pnpm bench <suite>` or BENCH_SUITE
 * (http | fanout | gateway | runs | compat | chat | start). PostgreSQL when BENCH_DATABASE_URL or
 * TEST_DATABASE_URL is set (a cloned test database), else in-memory PGlite.
 *
 * http: throughput and p99 latency of the real app, as ratios against a raw Fastify route on
 * the same server. The server runs in a child process (server.ts); autocannon generates load
 * from this one. BENCH_DURATION_SECONDS overrides 5 s.
 *
 * fanout: WebSocket delivery to N subscribers of one conversation beside a raw `ws`
 * broadcast (fanout.ts).
 *
 * gateway: model calls through the provider gateway (budgets, balance, usage rows) beside
 * the same mock provider called directly, and reservations under contention on one project
 * (gateway.ts).
 *
 * runs: agent runs of a 3-step workflow with the mock model: orchestration overhead per step
 * beside the provider's own time, and runs/s completed (runs.ts).
 *
 * compat: streamed POST /v1/messages through SmartSpace (key, gateway, the Claude adapter)
 * beside the same Messages-API stand-in called directly: added ms to the first token and per
 * call, and calls/s at 50 in flight (compat.ts).
 *
 * chat: chat.send → reply.completed beside the model's own time (chat.ts).
 *
 * start: the production start (the compiled server) to its first /health 200 (start.ts).
 *
 * After the suites, the goals table (goals.ts): every goal in order, this run's figure, met
 * or not.
 */
import { cpus, loadavg } from 'node:os';
import autocannon, { type Options, type Result } from 'autocannon';
import { runChat } from './chat';
import { runCompat } from './compat';
import { runFanout } from './fanout';
import { runGateway } from './gateway';
import { goalsReport, record } from './goals';
import { failures, type Row, summary, table } from './report';
import { runRuns } from './runs';
import type { ReadyMessage } from './server';
import { mutate, startChild, stopChild } from './shared';
import { runStart } from './start';

const DURATION = Number(process.env.BENCH_DURATION_SECONDS ?? 5);
const WARMUP = 1;
const CONNECTIONS = 50;
const LOGIN_CONNECTIONS = 8;
const PROBE = { connections: 2, overallRate: 200 };
const PASSWORD = 'correct horse battery staple';

/** One request first: a case that fails outright is reported before it is measured. */
async function preflight(opts: Options): Promise<void> {
  const init: RequestInit = { method: opts.method ?? 'GET' };
  if (opts.headers) init.headers = opts.headers;
  if (opts.body) init.body = opts.body;
  const res = await fetch(opts.url, init);
  const text = await res.text();
  // A tRPC batch answers 207 when some calls fail; every entry must be a result.
  const body: unknown = JSON.parse(text);
  const ok = Array.isArray(body) ? body.every((e) => 'result' in e) : !('error' in Object(body));
  if (res.status !== 200 || !ok)
    throw new Error(`${opts.url} → ${res.status} ${text.slice(0, 300)}`);
}

function load(opts: Options, duration: number): Promise<Result> {
  return autocannon({ timeout: 10, ...opts, duration });
}

/** Runs the HTTP suite and prints its report; false when a case had failures. */
async function runHttp(): Promise<boolean> {
  const started = Date.now();
  const loadBefore = loadavg()[0] ?? 0;
  console.log('Starting the server (child process)…');
  const { child, ready } = await startChild<ReadyMessage>('./server.ts');
  try {
    const origin = `http://127.0.0.1:${ready.port}`;
    const session = await mutate<{ accessToken: string; user: { id: string; email: string } }>(
      origin,
      'auth.register',
      { email: `bench.${Date.now()}@example.com`, password: PASSWORD, name: 'Bench' },
    );
    const auth = { authorization: `Bearer ${session.accessToken}` };
    const project = await mutate<{ id: string }>(
      origin,
      'projects.create',
      { name: 'Bench' },
      session.accessToken,
    );
    const input = (value: unknown) => encodeURIComponent(JSON.stringify(value));
    const batch = Array.from({ length: 10 }, () => 'users.me').join(',');
    const login: Options = {
      url: `${origin}/trpc/auth.login`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: session.user.email, password: PASSWORD }),
      connections: LOGIN_CONNECTIONS,
    };
    const probe: Options = { url: `${origin}/bench-trpc/ping`, ...PROBE };

    type Case = Omit<Row, 'result' | 'connections'> & { opts: Options };
    const get = (path: string, headers?: Record<string, string>): Options => ({
      url: `${origin}${path}`,
      connections: CONNECTIONS,
      ...(headers ? { headers } : {}),
    });
    const cases: Case[] = [
      { name: 'raw Fastify JSON (baseline)', queries: '0', ratio: true, opts: get('/bench/raw') },
      { name: 'GET /health', queries: '0', ratio: true, opts: get('/health') },
      {
        name: 'tRPC query, no DB (bench ping)',
        queries: '0',
        ratio: true,
        opts: get('/bench-trpc/ping'),
      },
      {
        name: 'same, stock @trpc fastify adapter',
        queries: '0',
        ratio: true,
        opts: get('/bench-trpc-stock/ping'),
      },
      {
        name: 'tRPC users.me (session check, kept 5 s)',
        queries: '0–1',
        ratio: true,
        opts: get('/trpc/users.me', auth),
      },
      {
        name: 'tRPC projects.get (membership + project PK)',
        queries: '1',
        ratio: true,
        opts: get(`/trpc/projects.get?input=${input({ projectId: project.id })}`, auth),
      },
      {
        name: 'raw Fastify + driver PK read (same row)',
        queries: '1',
        ratio: true,
        opts: get(`/bench/raw-pk?id=${session.user.id}`),
      },
      {
        name: 'tRPC batch 10× users.me (per HTTP request)',
        queries: '0–1',
        ratio: true,
        opts: get(`/trpc/${batch}?batch=1&input=${input({})}`, auth),
      },
      {
        name: 'raw Fastify JSON again (drift check)',
        queries: '0',
        ratio: true,
        opts: get('/bench/raw'),
      },
      {
        name: 'login, argon2id m=19MiB t=2 (logins/s)',
        queries: '1 + tx(2)',
        ratio: true,
        opts: login,
      },
      { name: 'probe: tRPC ping @200 req/s, unloaded', queries: '0', ratio: false, opts: probe },
    ];

    const total = cases.length + 1;
    const rows: Row[] = [];
    const connections = (o: Options) =>
      `${o.connections ?? 10}${o.overallRate ? ` @${o.overallRate}/s` : ''}`;
    for (const [i, c] of cases.entries()) {
      process.stdout.write(`[${i + 1}/${total}] ${c.name} … `);
      await preflight(c.opts);
      await load(c.opts, WARMUP);
      const result = await load(c.opts, DURATION);
      console.log(summary(result));
      rows.push({ ...c, connections: connections(c.opts), result });
    }

    process.stdout.write(`[${total}/${total}] logins saturating + probe, concurrently … `);
    const [loginLoaded, probeLoaded] = await Promise.all([
      load(login, DURATION),
      load(probe, DURATION),
    ]);
    console.log(`probe ${summary(probeLoaded)}`);
    rows.push(
      {
        name: 'probe: tRPC ping @200 req/s, during logins',
        queries: '0',
        ratio: false,
        connections: connections(probe),
        result: probeLoaded,
      },
      {
        name: 'login, while the probe runs (logins/s)',
        queries: '1 + tx(2)',
        ratio: true,
        connections: connections(login),
        result: loginLoaded,
      },
    );

    const baseline = rows[0]?.result.requests.average ?? 1;
    const rate = (prefix: string) =>
      rows.find((r) => r.name.startsWith(prefix))?.result.requests.average;
    const driverRead = rate('raw Fastify + driver PK read');
    const projectsGet = rate('tRPC projects.get');
    const usersMe = rate('tRPC users.me');
    if (driverRead && projectsGet) record('http.projectsGet', projectsGet / driverRead);
    if (driverRead && usersMe) record('http.usersMe', usersMe / driverRead);
    const batchRow = rows.find((r) => r.name.startsWith('tRPC batch'));
    const again = rows.find((r) => r.name.includes('drift'))?.result.requests.average ?? baseline;
    const drift = again / baseline - 1;
    const driftNote =
      Math.abs(drift) > 0.15
        ? `\n- WARNING: the baseline moved ${(drift * 100).toFixed(0)}% between its two runs; something else competed for the CPU, so treat the ratios as rough and rerun on a quiet machine.`
        : '';
    const probeUnloaded = rows.find((r) => r.name.includes('unloaded'))?.result.latency.p99 ?? 0;
    const cpu = cpus();
    console.log(`
## SmartSpace HTTP bench

node ${process.version} · ${cpu.length} CPU (${cpu[0]?.model.trim() ?? 'unknown'}) · UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'} · load average before start ${loadBefore.toFixed(2)}
database: ${ready.database}
autocannon: ${DURATION} s per case after a ${WARMUP} s warm-up; server and load generator in separate processes on this machine

${table(rows, baseline)}

- vs raw: req/s divided by the raw Fastify JSON route's (${Math.round(baseline)} req/s) on the same server; baseline routes also pass the app's global hooks (request id, CORS). The repeat of the baseline shows run-to-run drift: read ratios within that margin.
- users.me: the session check (a prepared sessions ⋈ users primary-key join) returns the user, and a check that stood is kept in the process for SESSION_CACHE_MS (5 s; forgotten at once, on every instance, when the session ends or the user changes), so under load it makes no query; projects.get is 1 query: with a kept session check, the caller's membership and the project row (two primary-key lookups); without one, the session, the membership and the project in one prepared query (left joins).
- the driver read is prepared, as postgres.js prepares its tagged templates (one round trip); every statement the app sends with parameters is prepared too (DATABASE_PREPARED_STATEMENTS).
- the batch makes 10 calls per HTTP request (${Math.round((batchRow?.result.requests.average ?? 0) * 10)} calls/s); the session check runs once per request and answers all ten.
- login: user lookup, argon2id verify on the libuv pool, then one transaction inserting the session and its refresh token.
- probe p99 while logins saturate the server: ${probeLoaded.latency.p99} ms vs ${probeUnloaded} ms unloaded.${driftNote}
- total run time ${Math.round((Date.now() - started) / 1000)} s`);

    const failed = rows.filter((r) => failures(r.result) > 0);
    for (const r of failed)
      console.error(`FAILED: ${r.name}: ${failures(r.result)} non-2xx responses or errors`);
    return failed.length === 0;
  } finally {
    await stopChild(child);
  }
}

const SUITES = {
  http: runHttp,
  fanout: runFanout,
  gateway: runGateway,
  runs: runRuns,
  compat: runCompat,
  chat: async () => (await runChat()) !== null,
  start: runStart,
} as const;
type Suite = keyof typeof SUITES;
const isSuite = (s: string): s is Suite => Object.hasOwn(SUITES, s);

async function main(): Promise<void> {
  const selected = process.argv[2] ?? process.env.BENCH_SUITE ?? 'all';
  const names = selected === 'all' ? (Object.keys(SUITES) as Suite[]) : [selected];
  for (const name of names) {
    if (!isSuite(name)) {
      console.error(`unknown suite "${name}": use ${Object.keys(SUITES).join(' | ')} or all`);
      process.exitCode = 1;
      return;
    }
    try {
      if (!(await SUITES[name]())) process.exitCode = 1;
    } catch (err: unknown) {
      console.error(`\n${name} bench aborted:`, err instanceof Error ? err.message : err);
      process.exitCode = 1;
    }
  }
  const goals = goalsReport();
  if (goals) console.log(`\n${goals}`);
}

void main();
