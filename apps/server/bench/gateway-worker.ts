/**
 * The gateway bench's child (started by gateway.ts): mock-model calls through
 * api.deps.gateway.stream beside the same provider called directly, in this one process, over
 * a fresh test database. Runs every case, sends the report as its one IPC message, and
 * drops its database when the parent disconnects.
 *
 * Two Api instances share the database: BILLING_MODE=off (metering, budget limits) and
 * BILLING_MODE=prepaid (limits and the project balance). mock-echo is priced at 1000
 * micro-USDC per output token and every call asks for 2 ("Echo: go"), so each costs 0.002
 * USDC and the books can be checked exactly after each run.
 */
import { randomUUID } from 'node:crypto';
import { type Api, createApi, createCaller, loadConfig } from '@smartspace/api';
import { createTestDatabase } from '@smartspace/api/testing';
import {
  type Call,
  type GatewayCase,
  type GatewayReport,
  type Measurement,
  measure,
} from './gateway-measure';

const SECONDS = Number(process.env.BENCH_GATEWAY_SECONDS ?? 2);
const IN_FLIGHT = Number(process.env.BENCH_GATEWAY_IN_FLIGHT ?? 50);
const WARMUP_SECONDS = 0.5;
const PRICES = JSON.stringify({ 'mock-echo': { input: '0', output: '1000' } });
const COST_MICRO = 2000n;
/** Budgets that never deny in a run, and balances that never run out. */
const NEVER = '1000000';
const CREDIT = '1000.000000';
const DENIAL_AFFORDS = 10;

const messages = [{ role: 'user' as const, content: 'go' }];
/** Wire amounts always carry 6 decimals: dropping the point gives micro-USDC. */
const micro = (amount: string) => BigInt(amount.replace('.', ''));
const usdc = (m: bigint) => `${m / 1_000_000n}.${(m % 1_000_000n).toString().padStart(6, '0')}`;

async function main(): Promise<void> {
  const database = await createTestDatabase();
  const open = (billingMode: string) =>
    createApi({
      config: loadConfig({
        NODE_ENV: 'production',
        JWT_SECRET: randomUUID() + randomUUID(),
        LOG_LEVEL: 'silent',
        RATE_LIMIT_PER_MINUTE: '0',
        MOCK_MODEL_ENABLED: 'true',
        MODEL_PRICES: PRICES,
        BILLING_MODE: billingMode,
      }),
      database,
      migrate: false,
      mockChunkDelayMs: 0,
    });
  const metered = await open('off');
  const prepaid = await open('prepaid');
  const caller = (api: Api, token: string | null) =>
    createCaller(api.createContext({ token, ip: '127.0.0.1', requestId: randomUUID() }));

  // The database's first account is the platform admin, who may credit balances.
  const session = await caller(prepaid, null).auth.register({
    email: `gateway.bench.${Date.now()}@example.com`,
    password: 'correct horse battery staple',
    name: 'Gateway bench',
  });
  const admin = caller(prepaid, session.accessToken);
  const project = async (opts: { limit?: string; credit?: boolean }) => {
    const { id } = await admin.projects.create({ name: 'Gateway bench' });
    if (opts.limit) {
      await admin.budgets.setLimit({
        projectId: id,
        scope: 'project',
        period: 'month',
        amount: opts.limit,
      });
    }
    if (opts.credit) {
      await admin.payments.credit({ projectId: id, amount: CREDIT, reason: 'bench' });
    }
    return id;
  };

  const provider = metered.deps.models.provider('mock-echo');
  const direct: Call = async () => {
    for await (const _ of provider.stream({ model: 'mock-echo', messages, maxOutputTokens: 2 })) {
      // Drained, as the gateway drains it.
    }
    return 'ok';
  };
  const through =
    (api: Api, projectOf: (worker: number) => string): Call =>
    async (worker) => {
      try {
        const stream = api.deps.gateway.stream({
          projectId: projectOf(worker),
          userId: session.user.id,
          source: 'chat',
          model: 'mock-echo',
          messages,
          maxOutputTokens: 2,
        });
        for await (const _ of stream) {
          // Drained: settlement runs as the stream ends.
        }
        return 'ok';
      } catch (err) {
        if ((err as { code?: unknown }).code === 'budget.exceeded') return 'denied';
        throw err;
      }
    };

  /** Metered spend = successes × cost; limits and balances agree; nothing left reserved. */
  async function books(
    projectIds: string[],
    m: Measurement,
    opts: { credited?: boolean; affords?: number } = {},
  ) {
    const problems: string[] = [];
    // What the instances hold in advance (budget leases) goes back first.
    await Promise.all([metered.deps.gateway.releaseLeases(), prepaid.deps.gateway.releaseLeases()]);
    if (opts.affords !== undefined && m.ok !== opts.affords) {
      problems.push(`${m.ok} calls succeeded, the budget affords ${opts.affords}`);
    }
    let total = 0n;
    for (const projectId of projectIds) {
      const view = await admin.budgets.get({ projectId });
      const spent = micro(view.spentThisPeriod);
      total += spent;
      for (const l of view.limits) {
        if (micro(l.spent) !== spent) problems.push(`limit spent ${l.spent}, metered ${spent}`);
        if (l.reserved !== '0.000000') problems.push(`limit reserved ${l.reserved}`);
      }
      if (view.reserved !== '0.000000') problems.push(`balance reserved ${view.reserved}`);
      const charged = micro(CREDIT) - micro(view.balance);
      if (opts.credited && charged !== spent) {
        problems.push(`balance charged ${usdc(charged)}, metered ${view.spentThisPeriod}`);
      }
    }
    if (total !== BigInt(m.ok) * COST_MICRO) {
      problems.push(`metered ${usdc(total)} USDC for ${m.ok} calls`);
    }
    return problems;
  }

  // JIT, connection pool and table caches: a throw-away run of the full path and the direct one.
  const scratch = await project({ limit: NEVER, credit: true });
  await measure(
    WARMUP_SECONDS,
    IN_FLIGHT,
    through(prepaid, () => scratch),
  );
  await measure(WARMUP_SECONDS / 4, IN_FLIGHT, direct);

  const cases: GatewayCase[] = [];
  const run = async (
    c: Pick<GatewayCase, 'name' | 'path' | 'inFlight' | 'baseline'>,
    call: Call,
    check: (m: Measurement) => Promise<string[]> = async () => [],
  ) => {
    process.stdout.write(`  ${c.name} (${c.inFlight} in flight) … `);
    // The direct calls take microseconds: a second gives hundreds of thousands.
    const m = await measure(c.baseline ? SECONDS : Math.min(1, SECONDS), c.inFlight, call);
    const problems = await check(m);
    const note = problems.length > 0 ? `, BOOKS: ${problems.join('; ')}` : '';
    console.log(`${Math.round(m.calls / m.seconds)} calls/s, p99 ${m.p99.toFixed(2)} ms${note}`);
    cases.push({ ...c, ...m, problems });
  };

  const seq = { inFlight: 1, baseline: 'provider direct, sequential' };
  await run({ ...seq, name: seq.baseline, path: 'MockProvider.stream', baseline: null }, direct);
  const bare = await project({});
  await run(
    { ...seq, name: 'gateway, metering only', path: 'no limit, BILLING_MODE=off' },
    through(metered, () => bare),
    (m) => books([bare], m),
  );
  const limited = await project({ limit: NEVER });
  await run(
    { ...seq, name: 'gateway, project limit', path: 'BILLING_MODE=off' },
    through(metered, () => limited),
    (m) => books([limited], m),
  );
  const full = await project({ limit: NEVER, credit: true });
  await run(
    { ...seq, name: 'gateway, limit + prepaid balance', path: 'BILLING_MODE=prepaid' },
    through(prepaid, () => full),
    (m) => books([full], m, { credited: true }),
  );

  const par = { inFlight: IN_FLIGHT, baseline: 'provider direct, concurrent' };
  await run({ ...par, name: par.baseline, path: 'MockProvider.stream', baseline: null }, direct);
  const spread = await Promise.all(
    Array.from({ length: IN_FLIGHT }, () => project({ limit: NEVER, credit: true })),
  );
  await run(
    { ...par, name: 'gateway, limit + balance, one project per caller', path: 'no shared rows' },
    through(prepaid, (worker) => spread[worker] ?? scratch),
    (m) => books(spread, m, { credited: true }),
  );
  const hot = await project({ limit: NEVER, credit: true });
  await run(
    { ...par, name: 'gateway, limit + balance, ONE project', path: 'same budget + balance rows' },
    through(prepaid, () => hot),
    (m) => books([hot], m, { credited: true }),
  );
  const denying = await project({
    limit: usdc(COST_MICRO * BigInt(DENIAL_AFFORDS)),
    credit: true,
  });
  await run(
    {
      ...par,
      name: `gateway, ONE project, budget for ${DENIAL_AFFORDS} calls`,
      path: 'denial path',
    },
    through(prepaid, () => denying),
    (m) => books([denying], m, { credited: true, affords: DENIAL_AFFORDS }),
  );

  const kind =
    database.kind === 'postgres' ? 'PostgreSQL (cloned test database)' : 'PGlite (in memory)';
  const report: GatewayReport = { type: 'report', database: kind, cases };
  process.send?.(report);

  let closing = false;
  const shutdown = async () => {
    if (closing) return;
    closing = true;
    await metered.close();
    await prepaid.close();
    await database.close();
    process.exit(0);
  };
  process.on('disconnect', shutdown);
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

main().catch((err: unknown) => {
  console.error('gateway bench failed:', err);
  process.exit(1);
});
