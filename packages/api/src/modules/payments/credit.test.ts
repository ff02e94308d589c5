import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../db/client';
import { type Api, createApi, createCaller, openDatabase, type Session } from '../../index';
import { createTestDatabase, testConfig } from '../../testing';
import type { TestDatabase } from '../../testing/database';

let database: TestDatabase;
/** Two instances on one database, each with its own pool (one only on PGlite). */
let apis: Api[] = [];
let admin: Session;
let owner: Session;
let projectId: string;

/** A caller on instance `i`, as a load balancer would spread requests. */
function caller(i: number, token: string | null) {
  const api = apis[i % apis.length];
  if (!api) throw new Error('no api');
  return createCaller(api.createContext({ token, ip: '127.0.0.1', requestId: randomUUID() }));
}

const signUp = (name: string) =>
  caller(0, null).auth.register({
    email: `${name.toLowerCase()}.${randomUUID().slice(0, 8)}@example.com`,
    password: 'correct horse battery staple',
    name,
  });

beforeAll(async () => {
  database = await createTestDatabase();
  apis = [await createApi({ config: testConfig(), database, migrate: false })];
  if (database.url) {
    const second = await openDatabase({ url: database.url, dataDir: 'unused', poolSize: 10 });
    const api = await createApi({ config: testConfig(), database: second, migrate: false });
    apis.push({
      ...api,
      async close() {
        await api.close();
        await second.close();
      },
    });
  }
  admin = await signUp('Admin');
  owner = await signUp('Owner');
  projectId = (await caller(0, owner.accessToken).projects.create({ name: 'Credited' })).id;
});
afterAll(async () => {
  for (const api of apis) await api.close();
  await database.close();
});

const adminCaller = (i: number) => caller(i, admin.accessToken);
const balance = async () => (await caller(0, owner.accessToken).budgets.get({ projectId })).balance;

async function ledger(reference: string) {
  return rowsOf<{ amount: string }>(
    await database.db.execute(
      sql`select amount::text from ledger_entries where reference = ${reference}`,
    ),
  );
}

describe('payments.credit with an idempotency key', () => {
  it('20 concurrent retries all answer the one entry; it is applied and audited once', async () => {
    const key = `retry-${randomUUID()}`;
    const args = { projectId, amount: '2.5', reason: 'goodwill', idempotencyKey: key };
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => adminCaller(i).payments.credit(args)),
    );
    const failed = results.flatMap((r) =>
      r.status === 'rejected' ? [String(r.reason).slice(0, 80)] : [],
    );
    expect(failed).toEqual([]);
    const answers = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    expect(answers[0]).toMatchObject({
      projectId,
      kind: 'credit',
      amount: '2.500000',
      balanceAfter: '2.500000',
      reference: `credit:${key}`,
    });
    for (const a of answers) expect(a).toEqual(answers[0]);
    expect(await ledger(`credit:${key}`)).toEqual([{ amount: '2500000' }]);
    expect(await balance()).toBe('2.500000');
    const audited = await adminCaller(0).audit.list({ projectId, action: 'payments.credited' });
    expect(audited.items.filter((e) => e.target === answers[0]?.id)).toHaveLength(1);

    // A retry long after answers the same entry and changes nothing.
    expect(await adminCaller(0).payments.credit(args)).toEqual(answers[0]);
    expect(await balance()).toBe('2.500000');
  });

  it('concurrent credits with distinct keys all apply, and the ledger sums to the balance', async () => {
    const before = await balance();
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        adminCaller(i).payments.credit({
          projectId,
          amount: '0.1',
          reason: 'many',
          idempotencyKey: `distinct-${i}-${randomUUID()}`,
        }),
      ),
    );
    expect(new Set(answers.map((a) => a.id)).size).toBe(20);
    const after = await balance();
    expect(Number(after) - Number(before)).toBeCloseTo(2, 6);
    const [sum] = rowsOf<{ total: string; balance: string }>(
      await database.db.execute(sql`
        select (select sum(amount)::text from ledger_entries where project_id = ${projectId}) as total,
               (select balance::text from project_balances where project_id = ${projectId}) as balance`),
    );
    expect(sum?.total).toBe(sum?.balance);
  });
});
