/**
 * The runs bench's child (started by runs.ts): agent runs of a 3-step workflow (model call →
 * calculator → model call) with mock-echo streaming without pauses, over a fresh test
 * database. Sends the report as its one IPC message and drops its database when the parent
 * disconnects.
 *
 * Only one Api at a time owns a runner: every runner's poll claims queued runs of any
 * project, so the sequential Api (RUNS_MAX_CONCURRENT_PER_PROJECT=1) is closed before the
 * concurrent one opens. They share the database and the JWT secret, so one session serves.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Api, createApi, createCaller, loadConfig } from '@smartspace/api';
import { createTestDatabase } from '@smartspace/api/testing';
import { percentile } from './fanout-protocol';
import type { RunsCase, RunsReport } from './runs';

const RUNS = Number(process.env.BENCH_RUNS_COUNT ?? 200);
const CONCURRENCY = Number(process.env.BENCH_RUNS_CONCURRENCY ?? 50);
const SEQUENTIAL = Number(process.env.BENCH_RUNS_SEQUENTIAL ?? 200);
/** Sequential runs finished before the clock starts: the backlog's INSERTs are over by then. */
const SEQ_LEAD = 5;
const DIRECT_PAIRS = 2000;
const INSTRUCTIONS = 'Be helpful.';
const INPUT = 'Add: [[tool:calculator {"expression":"2+2"}]]';
const OUTPUT = 'Result: {"result":4}';
const JWT_SECRET = randomUUID() + randomUUID();
const TIMEOUT_MS = 45_000;

type Caller = ReturnType<typeof createCaller>;
type Request = Parameters<ReturnType<Api['deps']['models']['provider']>['stream']>[0];

async function main(): Promise<void> {
  const database = await createTestDatabase();
  const open = (concurrency: number) =>
    createApi({
      config: loadConfig({
        NODE_ENV: 'production',
        JWT_SECRET,
        LOG_LEVEL: 'silent',
        RATE_LIMIT_PER_MINUTE: '0',
        MOCK_MODEL_ENABLED: 'true',
        BILLING_MODE: 'off',
        RUNS_MAX_CONCURRENT_PER_PROJECT: String(concurrency),
      }),
      database,
      migrate: false,
      mockChunkDelayMs: 0,
    });
  const caller = (api: Api, token: string | null) =>
    createCaller(api.createContext({ token, ip: '127.0.0.1', requestId: randomUUID() }));

  let api = await open(1);
  const gatewayMs = timeGateway(api);
  const session = await caller(api, null).auth.register({
    email: `runs.bench.${Date.now()}@example.com`,
    password: 'correct horse battery staple',
    name: 'Runs bench',
  });
  const setup = async (c: Caller) => {
    const { id: projectId } = await c.projects.create({ name: 'Runs bench' });
    const agent = await c.agents.create({
      projectId,
      name: 'Calculator',
      instructions: INSTRUCTIONS,
      model: 'mock-echo',
      tools: ['calculator'],
    });
    return { projectId, agentId: agent.id };
  };

  /** Starts `n` runs at once, waits until none is queued or running, returns them settled. */
  async function batch(c: Caller, n: number) {
    const { projectId, agentId } = await setup(c);
    const t0 = Date.now();
    const started = await Promise.all(
      Array.from({ length: n }, () => c.runs.start({ agentId, input: INPUT })),
    );
    // The in-process count costs no query; the list confirms (a claim may be in between).
    const deadline = Date.now() + TIMEOUT_MS;
    for (;;) {
      if (Date.now() > deadline) throw new Error(`runs not settled after ${TIMEOUT_MS} ms`);
      await sleep(10);
      if (api.deps.runner.running > 0) continue;
      const first = await c.runs.list({ projectId, limit: 100 });
      if (first.items.some((r) => r.status === 'queued' || r.status === 'running')) continue;
      break;
    }
    const runs = await Promise.all(started.map((r) => c.runs.get({ runId: r.id })));
    return { t0, runs };
  }

  const problems = (runs: Awaited<ReturnType<typeof batch>>['runs']) => {
    const bad = runs.filter(
      (r) =>
        r.status !== 'succeeded' ||
        r.output !== OUTPUT ||
        r.steps.map((s) => s.kind).join() !== 'model,tool,model',
    );
    const first = bad[0];
    return {
      failed: bad.length,
      firstError: first
        ? `${first.status} ${JSON.stringify(first.error ?? first.output)} steps ${first.steps.map((s) => s.kind).join()}`
        : null,
    };
  };
  const at = (iso: string | null) => (iso ? Date.parse(iso) : Number.NaN);
  const latencies = (runs: Awaited<ReturnType<typeof batch>>['runs']) =>
    runs.map((r) => at(r.finishedAt) - at(r.createdAt)).sort((x, y) => x - y);

  // The two provider calls of one run, exactly as the runner sends them.
  const provider = api.deps.models.provider('mock-echo');
  const tools = [
    {
      name: 'calculator',
      description: 'Evaluates an arithmetic expression.',
      inputSchema: { type: 'object', properties: { expression: { type: 'string' } } },
    },
  ];
  const toolUse = { type: 'tool_use' as const, id: 'toolu_mock_1_1', name: 'calculator' };
  const first: Request = {
    model: 'mock-echo',
    system: INSTRUCTIONS,
    messages: [{ role: 'user', content: INPUT }],
    maxOutputTokens: 4096,
    tools,
  };
  const second: Request = {
    ...first,
    messages: [
      { role: 'user', content: INPUT },
      { role: 'assistant', content: [{ ...toolUse, input: { expression: '2+2' } }] },
      {
        role: 'user',
        content: [{ type: 'tool_result', toolUseId: toolUse.id, content: '{"result":4}' }],
      },
    ],
  };
  const drain = async (req: Request) => {
    let text = '';
    let calls = 0;
    for await (const ev of provider.stream(req)) {
      if (ev.type === 'delta') text += ev.text;
      else if (ev.type === 'tool_use') calls++;
    }
    return { text, calls };
  };
  const check = [await drain(first), await drain(second)];
  if (check[0]?.calls !== 1 || check[1]?.text !== OUTPUT) {
    throw new Error(`the direct calls do not replay a run: ${JSON.stringify(check)}`);
  }
  const pair = async () => {
    await drain(first);
    await drain(second);
  };
  for (let i = 0; i < 200; i++) await pair();
  const d0 = performance.now();
  for (let i = 0; i < DIRECT_PAIRS; i++) await pair();
  const directPairMs = (performance.now() - d0) / DIRECT_PAIRS;

  const owner = () => caller(api, session.accessToken);
  process.stdout.write('  warm-up (10 runs) … ');
  await batch(owner(), 10);
  console.log('done');

  const cases: RunsCase[] = [];
  process.stdout.write(`  sequential: ${SEQUENTIAL} runs, concurrency 1 … `);
  const seq = await batch(owner(), SEQUENTIAL + SEQ_LEAD);
  const finished = seq.runs.map((r) => at(r.finishedAt)).sort((x, y) => x - y);
  const seqWall = ((finished.at(-1) ?? 0) - (finished[SEQ_LEAD - 1] ?? 0)) / 1000;
  // Executed back to back, queue wait excluded: claimed (startedAt) → finished.
  const seqExec = seq.runs
    .slice(SEQ_LEAD)
    .map((r) => at(r.finishedAt) - at(r.startedAt))
    .sort((x, y) => x - y);
  cases.push({
    name: 'sequential (concurrency 1)',
    concurrency: 1,
    runs: SEQUENTIAL,
    seconds: seqWall,
    p50: percentile(seqExec, 50),
    p99: percentile(seqExec, 99),
    latency: 'claimed → finished',
    ...problems(seq.runs),
  });
  console.log(`${(SEQUENTIAL / seqWall).toFixed(0)} runs/s`);
  // Mean time inside each step as the runner records it (millisecond timestamps).
  const measured = seq.runs.slice(SEQ_LEAD);
  const stepMs = [0, 1, 2].map(
    (i) => measured.reduce((sum, r) => sum + (r.steps[i]?.durationMs ?? 0), 0) / measured.length,
  );
  const perRun = (m: Map<string, number>) =>
    measured.reduce((sum, r) => sum + (m.get(r.id) ?? Number.NaN), 0) / measured.length;
  const gatewayRunMs = perRun(gatewayMs.stream);
  const settleRunMs = perRun(gatewayMs.settle);

  const events = await api.deps.bus.readAfter(`run:${seq.runs[0]?.id}`, 0, 1000);
  await api.close();
  api = await open(CONCURRENCY);

  process.stdout.write(`  concurrent: ${RUNS} runs, ${CONCURRENCY} per project … `);
  const par = await batch(owner(), RUNS);
  const end = Math.max(...par.runs.map((r) => at(r.finishedAt)));
  const parLat = latencies(par.runs);
  cases.push({
    name: `${RUNS} started at once`,
    concurrency: CONCURRENCY,
    runs: RUNS,
    seconds: (end - par.t0) / 1000,
    p50: percentile(parLat, 50),
    p99: percentile(parLat, 99),
    latency: 'start → finished',
    ...problems(par.runs),
  });
  console.log(`${(RUNS / ((end - par.t0) / 1000)).toFixed(0)} runs/s`);

  const kind =
    database.kind === 'postgres' ? 'PostgreSQL (cloned test database)' : 'PGlite (in memory)';
  const report: RunsReport = {
    type: 'report',
    database: kind,
    directPairMs,
    directPairs: DIRECT_PAIRS,
    eventTypes: events.map((e) => e.type),
    stepMs,
    gatewayRunMs,
    settleRunMs,
    cases,
  };
  process.send?.(report);

  let closing = false;
  const shutdown = async () => {
    if (closing) return;
    closing = true;
    await api.close();
    await database.close();
    process.exit(0);
  };
  process.on('disconnect', shutdown);
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

/**
 * Per run id: wall time inside the gateway's stream (`stream`: its policy read, admission and
 * the provider call; the runner's consumer time between events left out) and the time its
 * settlements took to land once handed over (`settle`: written while the run goes on, so it
 * overlaps the runner's work). The runner and the Api share the one gateway object, so
 * wrapping its method here times exactly the calls the runner makes.
 */
function timeGateway(api: Api): { stream: Map<string, number>; settle: Map<string, number> } {
  const stream = new Map<string, number>();
  const settle = new Map<string, number>();
  const add = (m: Map<string, number>, runId: string | null | undefined, ms: number) => {
    if (runId) m.set(runId, (m.get(runId) ?? 0) + ms);
  };
  const gateway = api.deps.gateway;
  const inner = gateway.stream.bind(gateway);
  gateway.stream = async function* timed(call) {
    const handOver = call.settled;
    const events = inner({
      ...call,
      settled: handOver
        ? (settling) => {
            const t0 = performance.now();
            handOver(settling.then(() => add(settle, call.runId, performance.now() - t0)));
          }
        : undefined,
    });
    for (;;) {
      const t0 = performance.now();
      const next = await events.next();
      add(stream, call.runId, performance.now() - t0);
      if (next.done) return;
      yield next.value;
    }
  };
  return { stream, settle };
}

main().catch((err: unknown) => {
  console.error('runs bench failed:', err);
  process.exit(1);
});
