import Anthropic, { PermissionDeniedError } from '@anthropic-ai/sdk';
import { closeClient, type SmartSpaceClient } from '@smartspace/client';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Cluster,
  type Instance,
  multiInstanceEnabled,
  PASSWORD,
  startCluster,
} from './instances';

/**
 * POST /v1/messages across two server processes on one PostgreSQL: 100 concurrent streamed
 * calls through the real Anthropic SDK, split between the instances, on a project budget (or
 * a prepaid balance) that affords exactly 30 of them.
 *
 * mock-echo is priced at 1000 micro-USDC per output token with free input, and every call
 * asks for max_tokens 2 with the prompt "go" (the mock answers 2 tokens): each call reserves
 * and costs exactly 0.002 USDC, so "affords exactly 30" holds whatever the interleaving. The
 * servers' mock pauses 5 ms between chunks, so the calls overlap.
 */
const PRICES = JSON.stringify({ 'mock-echo': { input: '0', output: '1000' } });
const AFFORDED = 30;
const CALLS = 100;
const COST_MICRO = 2000;
const AFFORDS_30 = '0.060';

type Outcome = { ok: true; text: string; outputTokens: number } | { ok: false; error: unknown };

/** The database's first account is the platform admin (it may credit balances). */
async function ownerWithKey(cluster: Cluster, name: string) {
  const owner = cluster.a.client();
  await owner.auth.register.mutate({ email: `${name}@example.com`, password: PASSWORD, name });
  const project = await owner.projects.create.mutate({ name });
  const created = await owner.apiKeys.create.mutate({
    projectId: project.id,
    name: `${name} key`,
    role: 'member',
  });
  return { owner, projectId: project.id, keyId: created.key.id, secret: created.secret };
}

function sdk(instance: Instance, secret: string): Anthropic {
  // No retries: every call is one request, so the counts below are exact.
  return new Anthropic({
    apiKey: secret,
    baseURL: instance.origin,
    maxRetries: 0,
    timeout: 120_000,
  });
}

/** One streamed call of "go", drained to its final message; a refusal is an outcome too. */
async function streamedCall(client: Anthropic): Promise<Outcome> {
  try {
    const stream = client.messages.stream({
      model: 'mock-echo',
      max_tokens: 2,
      messages: [{ role: 'user', content: 'go' }],
    });
    const message = await stream.finalMessage();
    const text = message.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
    return { ok: true, text, outputTokens: message.usage.output_tokens };
  } catch (error) {
    return { ok: false, error };
  }
}

/** All calls at once, alternating between the two instances. */
async function race(cluster: Cluster, secret: string): Promise<Outcome[]> {
  const clients = [sdk(cluster.a, secret), sdk(cluster.b, secret)];
  return Promise.all(
    Array.from({ length: CALLS }, (_, i) => streamedCall(clients[i % 2] as Anthropic)),
  );
}

function expectRefusals(outcomes: Outcome[], appCode: string): void {
  const succeeded = outcomes.filter((o) => o.ok);
  const refused = outcomes.filter((o) => !o.ok);
  expect(succeeded).toHaveLength(AFFORDED);
  for (const o of succeeded) expect(o).toMatchObject({ text: 'Echo: go', outputTokens: 2 });
  expect(refused).toHaveLength(CALLS - AFFORDED);
  for (const o of refused) {
    const error = (o as { error: unknown }).error;
    expect(error).toBeInstanceOf(PermissionDeniedError);
    expect(error).toMatchObject({ status: 403 });
    expect((error as Error).message).toContain(`[${appCode}]`);
  }
}

interface RequestTotals {
  status: string;
  errorCode: string | null;
  source: string;
  calls: number;
  cost: string;
  reserved: string;
}

/** What the gateway recorded for the project, grouped by outcome. */
async function requestTotals(sql: postgres.Sql, projectId: string): Promise<RequestTotals[]> {
  return sql<RequestTotals[]>`
    select status::text as status, error_code as "errorCode", source::text as source,
      count(*)::int as calls, sum(cost)::text as cost, sum(reserved)::text as reserved
    from api_requests where project_id = ${projectId}
    group by status, error_code, source order by status`;
}

async function budgetUsage(sql: postgres.Sql, projectId: string) {
  return sql<{ spent: string; reserved: string }[]>`
    select u.spent::text as spent, u.reserved::text as reserved
    from budget_usage u join budget_limits l on l.id = u.limit_id
    where l.project_id = ${projectId}`;
}

describe.runIf(multiInstanceEnabled)(
  '/v1/messages on a project budget across two processes',
  () => {
    let cluster: Cluster;
    let sql: postgres.Sql;
    let owner: SmartSpaceClient | undefined;
    beforeAll(async () => {
      cluster = await startCluster({ MODEL_PRICES: PRICES });
      sql = postgres(cluster.databaseUrl, { max: 2, onnotice: () => {} });
    }, 200_000);
    afterAll(async () => {
      if (owner) await closeClient(owner);
      await sql?.end();
      await cluster?.close();
    });

    it(`${CALLS} concurrent streamed SDK calls on a budget for ${AFFORDED}: ${AFFORDED} answered, the rest 403`, async () => {
      const keyed = await ownerWithKey(cluster, 'compat-budget');
      owner = keyed.owner;
      await owner.budgets.setLimit.mutate({
        projectId: keyed.projectId,
        scope: 'project',
        period: 'month',
        amount: AFFORDS_30,
      });

      expectRefusals(await race(cluster, keyed.secret), 'budget.exceeded');

      const spent = String(AFFORDED * COST_MICRO);
      expect(await budgetUsage(sql, keyed.projectId)).toEqual([{ spent, reserved: '0' }]);
      expect(await requestTotals(sql, keyed.projectId)).toEqual([
        {
          status: 'denied',
          errorCode: 'budget.exceeded',
          source: 'api',
          calls: CALLS - AFFORDED,
          cost: '0',
          reserved: '0',
        },
        {
          status: 'succeeded',
          errorCode: null,
          source: 'api',
          calls: AFFORDED,
          cost: spent,
          reserved: '0',
        },
      ]);
      const [keyRows] = await sql<{ calls: number }[]>`
      select count(*)::int as calls from api_requests
      where project_id = ${keyed.projectId} and key_id = ${keyed.keyId}`;
      expect(keyRows?.calls).toBe(CALLS);
      // The owner's view agrees with the rows.
      const budget = await owner.budgets.get.query({ projectId: keyed.projectId });
      expect(budget.spentThisPeriod).toBe('0.060000');
      expect(budget.limits[0]).toMatchObject({ spent: '0.060000', reserved: '0.000000' });
    }, 200_000);
  },
);

describe.runIf(multiInstanceEnabled)(
  '/v1/messages on a prepaid balance across two processes',
  () => {
    let cluster: Cluster;
    let sql: postgres.Sql;
    let owner: SmartSpaceClient | undefined;
    beforeAll(async () => {
      cluster = await startCluster({ MODEL_PRICES: PRICES, BILLING_MODE: 'prepaid' });
      sql = postgres(cluster.databaseUrl, { max: 2, onnotice: () => {} });
    }, 200_000);
    afterAll(async () => {
      if (owner) await closeClient(owner);
      await sql?.end();
      await cluster?.close();
    });

    it(`${CALLS} concurrent streamed SDK calls on a balance for ${AFFORDED}: balance 0, ledger = usage`, async () => {
      const keyed = await ownerWithKey(cluster, 'compat-prepaid');
      owner = keyed.owner;
      await owner.payments.credit.mutate({
        projectId: keyed.projectId,
        amount: AFFORDS_30,
        reason: 'race top-up',
      });

      expectRefusals(await race(cluster, keyed.secret), 'balance.insufficient');

      const spent = String(AFFORDED * COST_MICRO);
      const totals = await requestTotals(sql, keyed.projectId);
      expect(totals).toEqual([
        {
          status: 'denied',
          errorCode: 'balance.insufficient',
          source: 'api',
          calls: CALLS - AFFORDED,
          cost: '0',
          reserved: '0',
        },
        {
          status: 'succeeded',
          errorCode: null,
          source: 'api',
          calls: AFFORDED,
          cost: spent,
          reserved: '0',
        },
      ]);
      expect(
        await sql`select balance::text as balance, reserved::text as reserved
        from project_balances where project_id = ${keyed.projectId}`,
      ).toEqual([{ balance: '0', reserved: '0' }]);
      // One charge per answered call, summing to the usage; the entries sum to the balance.
      const ledger = await sql<{ kind: string; entries: number; amount: string }[]>`
      select kind::text as kind, count(*)::int as entries, sum(amount)::text as amount
      from ledger_entries where project_id = ${keyed.projectId}
      group by kind order by kind`;
      expect(ledger).toEqual([
        { kind: 'charge', entries: AFFORDED, amount: `-${spent}` },
        { kind: 'credit', entries: 1, amount: spent },
      ]);
      expect(await owner.budgets.get.query({ projectId: keyed.projectId })).toMatchObject({
        balance: '0.000000',
        reserved: '0.000000',
        spentThisPeriod: '0.060000',
      });
    }, 200_000);
  },
);
