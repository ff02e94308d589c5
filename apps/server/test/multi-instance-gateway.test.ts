import { createApi, openDatabase } from '@smartspace/api';
import { testConfig } from '@smartspace/api/testing';
import { closeClient, type SmartSpaceClient } from '@smartspace/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cluster, multiInstanceEnabled, PASSWORD, startCluster } from './instances';

/**
 * The gateway across two server processes on one PostgreSQL: budgets and prepaid balances
 * hold under ~200 concurrent replies split between the instances, and a process killed
 * mid-reply leaves nothing reserved once a restarted process has swept.
 *
 * mock-echo priced at 1000 micro-USDC per output token, free input, and a policy capping
 * output at 2 tokens (the mock answers "go" with "Echo: go", 2 tokens): every reply costs
 * exactly its worst case, 0.002 USDC, so "affords exactly K replies" is exact whatever the
 * interleaving.
 */
const PRICES = JSON.stringify({ 'mock-echo': { input: '0', output: '1000' } });
const K = 7;
const AFFORDS_K = '0.014';
const SENDS = 200;

type Message = Awaited<
  ReturnType<SmartSpaceClient['chat']['messages']['list']['query']>
>['items'][number];

/** The first account of a database is the platform admin; it signs in on both instances. */
async function signIn(cluster: Cluster, name: string) {
  const onA = cluster.a.client();
  const onB = cluster.b.client();
  const session = await onA.auth.register.mutate({
    email: `${name}@example.com`,
    password: PASSWORD,
    name,
  });
  await onB.auth.login.mutate({ email: session.user.email, password: PASSWORD });
  return { onA, onB, session };
}

async function cappedProject(client: SmartSpaceClient, name: string) {
  const project = await client.projects.create.mutate({ name });
  await client.policies.update.mutate({ projectId: project.id, maxOutputTokens: 2 });
  return project.id;
}

/** Polls each conversation until its reply has stopped streaming; the replies, in order. */
async function finishedReplies(
  client: SmartSpaceClient,
  sends: { conversationId: string; replyId: string }[],
): Promise<Message[]> {
  const done = new Map<string, Message>();
  const deadline = Date.now() + 60_000;
  while (done.size < sends.length) {
    if (Date.now() > deadline)
      throw new Error(`${sends.length - done.size} replies still streaming`);
    const pending = sends.filter((s) => !done.has(s.replyId));
    const pages = await Promise.all(
      pending.map((s) => client.chat.messages.list.query({ conversationId: s.conversationId })),
    );
    for (const [i, page] of pages.entries()) {
      const reply = page.items.find((m) => m.id === pending[i]?.replyId);
      if (reply && reply.status !== 'streaming') done.set(reply.id, reply);
    }
    if (done.size < sends.length) await new Promise((r) => setTimeout(r, 250));
  }
  return sends.map((s) => done.get(s.replyId) as Message);
}

/** One "go" per fresh conversation, all at once, alternating between the two instances. */
async function raceReplies(onA: SmartSpaceClient, onB: SmartSpaceClient, projectId: string) {
  const conversations = await Promise.all(
    Array.from({ length: SENDS }, () => onA.chat.conversations.create.mutate({ projectId })),
  );
  const sends = await Promise.all(
    conversations.map(async (c, i) => {
      const via = i % 2 === 0 ? onA : onB;
      const { replyId } = await via.chat.send.mutate({
        conversationId: c.id,
        content: 'go',
        model: 'mock-echo',
      });
      return { conversationId: c.id, replyId };
    }),
  );
  const replies = await finishedReplies(onA, sends);
  const count = (pred: (m: Message) => boolean) => replies.filter(pred).length;
  return { replies, count };
}

async function allRequests(client: SmartSpaceClient, projectId: string) {
  const rows = [];
  let cursor: string | undefined;
  do {
    const page = await client.usage.requests.query({ projectId, limit: 100, cursor });
    rows.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return rows;
}

describe.runIf(multiInstanceEnabled)('a project budget across two processes', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({ MODEL_PRICES: PRICES });
  }, 60_000);
  afterAll(() => cluster?.close());

  it(`${SENDS} concurrent replies on a budget for exactly ${K}: ${K} complete, spend = budget`, async () => {
    const { onA, onB } = await signIn(cluster, 'budget-race');
    const projectId = await cappedProject(onA, 'Budget race');
    await onA.budgets.setLimit.mutate({
      projectId,
      scope: 'project',
      period: 'month',
      amount: AFFORDS_K,
    });

    const { replies, count } = await raceReplies(onA, onB, projectId);
    expect(count((m) => m.status === 'complete' && m.content === 'Echo: go')).toBe(K);
    expect(count((m) => m.status === 'failed' && m.errorCode === 'budget.exceeded')).toBe(
      SENDS - K,
    );
    expect(replies).toHaveLength(SENDS);

    const budget = await onB.budgets.get.query({ projectId });
    expect(budget.limits).toHaveLength(1);
    expect(budget.limits[0]).toMatchObject({ spent: '0.014000', reserved: '0.000000' });
    expect(budget.spentThisPeriod).toBe('0.014000');
    const requests = await allRequests(onB, projectId);
    expect(requests.filter((r) => r.status === 'succeeded')).toHaveLength(K);
    expect(
      requests.filter((r) => r.status === 'denied' && r.errorCode === 'budget.exceeded'),
    ).toHaveLength(SENDS - K);
    expect(requests.filter((r) => r.status === 'in_progress')).toHaveLength(0);
  });
});

describe.runIf(multiInstanceEnabled)('a prepaid balance across two processes', () => {
  // Replies without the policy cap may write 1000 tokens: a worst case of 1 USDC held.
  // Budget leases of one call's worst case, so what a dead process holds is exactly its call's.
  const env = {
    MODEL_PRICES: PRICES,
    BILLING_MODE: 'prepaid',
    CHAT_MAX_OUTPUT_TOKENS: '1000',
    GATEWAY_LEASE_CALLS: '1',
  };
  let cluster: Cluster;
  let onA: SmartSpaceClient;
  let onB: SmartSpaceClient;
  beforeAll(async () => {
    cluster = await startCluster(env);
    // The database's first account: a platform admin, who may credit balances.
    ({ onA, onB } = await signIn(cluster, 'prepaid-admin'));
  }, 60_000);
  afterAll(async () => {
    if (onA) await closeClient(onA);
    await cluster?.close();
  });

  it(`${SENDS} concurrent replies on a balance for exactly ${K}: ${K} complete, balance 0`, async () => {
    const projectId = await cappedProject(onA, 'Balance race');
    await onA.payments.credit.mutate({ projectId, amount: AFFORDS_K, reason: 'race top-up' });

    const { count } = await raceReplies(onA, onB, projectId);
    expect(count((m) => m.status === 'complete' && m.content === 'Echo: go')).toBe(K);
    expect(count((m) => m.status === 'failed' && m.errorCode === 'balance.insufficient')).toBe(
      SENDS - K,
    );

    expect(await onB.budgets.get.query({ projectId })).toMatchObject({
      balance: '0.000000',
      reserved: '0.000000',
      spentThisPeriod: '0.014000',
    });
    const requests = await allRequests(onB, projectId);
    expect(requests.filter((r) => r.status === 'succeeded')).toHaveLength(K);
    expect(requests.filter((r) => r.status === 'in_progress')).toHaveLength(0);
  });

  // Last in this block: it kills instance B.
  it('SIGKILL mid-reply: after the sweep, the reply is interrupted and nothing stays reserved', async () => {
    const project = await onA.projects.create.mutate({ name: 'Crash' });
    const projectId = project.id;
    await onA.payments.credit.mutate({ projectId, amount: '5', reason: 'crash top-up' });
    await onA.budgets.setLimit.mutate({
      projectId,
      scope: 'project',
      period: 'month',
      amount: '100',
    });
    const conversation = await onA.chat.conversations.create.mutate({ projectId });

    // Watched from A; the reply runs in B (the process that accepted chat.send).
    type Event = { type: string; appCode?: string };
    const events: Event[] = [];
    let onFirstDelta: () => void = () => {};
    const firstDelta = new Promise<void>((resolve) => {
      onFirstDelta = resolve;
    });
    let onFailed: () => void = () => {};
    const failed = new Promise<void>((resolve) => {
      onFailed = resolve;
    });
    const subscribed = new Promise<{ unsubscribe(): void }>((resolve, reject) => {
      const sub = onA.chat.onEvent.subscribe(
        { conversationId: conversation.id },
        {
          onStarted: () => resolve(sub),
          onData(t) {
            const event = t.data as Event;
            events.push(event);
            if (event.type === 'reply.delta') onFirstDelta();
            if (event.type === 'reply.failed') onFailed();
          },
          onError: reject,
        },
      );
    });
    const sub = await subscribed;
    // ~400 chunks at the server's 5 ms per chunk: the reply streams for over 2 s.
    const words = Array.from({ length: 400 }, (_, i) => `w${i}`).join(' ');
    const { replyId } = await onB.chat.send.mutate({
      conversationId: conversation.id,
      content: words,
      model: 'mock-echo',
    });
    await firstDelta;
    // A model call is on record as in progress once it has run 50 ms: killed after that.
    await expect
      .poll(async () => (await allRequests(onA, projectId))[0]?.status, {
        timeout: 5_000,
        interval: 20,
      })
      .toBe('in_progress');
    cluster.b.child.kill('SIGKILL');
    expect(await cluster.b.exited).toBe('SIGKILL');

    // What the dead process left: a streaming reply and an in-progress call holding money.
    const reply = async () =>
      (await onA.chat.messages.list.query({ conversationId: conversation.id })).items.find(
        (m) => m.id === replyId,
      );
    expect(await reply()).toMatchObject({ status: 'streaming' });
    const [call] = await allRequests(onA, projectId);
    expect(call).toMatchObject({ status: 'in_progress', conversationId: conversation.id });
    const held = await onA.budgets.get.query({ projectId });
    expect(held).toMatchObject({ balance: '5.000000', reserved: '1.000000' });
    expect(held.limits[0]).toMatchObject({ spent: '0.000000', reserved: '1.000000' });
    expect(events.some((e) => e.type === 'reply.completed')).toBe(false);

    // Recovery as a restarted process runs it; threshold 0 is safe: the owner is dead.
    const database = await openDatabase({
      url: cluster.databaseUrl,
      dataDir: 'unused',
      poolSize: 2,
    });
    const api = await createApi({ config: testConfig(env), database, migrate: false });
    try {
      expect(await api.deps.replies.sweep(0)).toBe(1);
      expect(await api.deps.gateway.sweep(0)).toBe(1);
    } finally {
      await api.close();
      await database.close();
    }

    expect(await reply()).toMatchObject({ status: 'failed', errorCode: 'reply.interrupted' });
    await failed;
    expect(events.at(-1)).toMatchObject({ type: 'reply.failed', appCode: 'reply.interrupted' });
    sub.unsubscribe();
    const [swept] = await allRequests(onA, projectId);
    expect(swept).toMatchObject({
      status: 'failed',
      errorCode: 'gateway.interrupted',
      cost: '0.000000',
    });
    // Released, and nothing charged (the usage died with the process).
    const after = await onA.budgets.get.query({ projectId });
    expect(after).toMatchObject({ balance: '5.000000', reserved: '0.000000' });
    expect(after.limits[0]).toMatchObject({ spent: '0.000000', reserved: '0.000000' });

    // The conversation and the money are usable again, through the surviving instance.
    const again = await onA.chat.send.mutate({
      conversationId: conversation.id,
      content: 'go',
      model: 'mock-echo',
    });
    const [done] = await finishedReplies(onA, [
      { conversationId: conversation.id, replyId: again.replyId },
    ]);
    expect(done).toMatchObject({ status: 'complete', content: 'Echo: go' });
    // Charged once; what A leased for the call goes back once the project is idle.
    await expect
      .poll(async () => await onA.budgets.get.query({ projectId }), { timeout: 10_000 })
      .toMatchObject({ balance: '4.998000', reserved: '0.000000' });
  });
});
