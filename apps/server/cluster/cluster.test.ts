import { randomUUID } from 'node:crypto';
import Anthropic from '@anthropic-ai/sdk';
import { startTestEvm, type TestEvm } from '@smartspace/api/testing/evm';
import { closeClient, createClient, type SmartSpaceClient } from '@smartspace/client';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type Deployment, startDeployment } from './deployment';

/**
 * `pnpm test:cluster`: the deployment recipe of deploy/ tested whole. Three compiled server
 * processes on one PostgreSQL and one Redis behind HAProxy (deploy/haproxy.cfg), all on
 * loopback; every request goes through the proxy. Mixed traffic (sign-ups, chat with live
 * subscriptions, budgeted calls through /v1/messages), one instance SIGKILLed mid-way and
 * started again; then: every subscriber saw every event of its conversation exactly once and
 * in order (resuming through the proxy on another instance), no reply left streaming, the
 * books balance (budget spend = usage, nothing reserved), the per-IP rate limit held across
 * instances (Redis), and the deposit watcher ran on exactly one instance at a time (the
 * instance killed is the active watcher; another takes over and credits a deposit). Prints
 * a short report.
 */

const REDIS_URL = process.env.CLUSTER_REDIS_URL ?? 'redis://127.0.0.1:6379/7';
const RATE_LIMIT = 60;
const USERS = 6;
const SENDS = 6;
const CALLS = 40;
/** Each budgeted call costs its worst case exactly (2 output tokens at 1,000 USDC/MTok). */
const AFFORDED = 12;
const PASSWORD = 'correct horse battery staple';
/** A reply or call on the killed instance is released by a sweeper within ~45 / ~75 s. */
const SETTLE_MS = 120_000;

/** A client whose every request, WebSocket included, comes from `ip` (X-Forwarded-For). */
function clientFrom(origin: string, ip: string): SmartSpaceClient {
  class FromIp extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols, { headers: { 'x-forwarded-for': ip } });
    }
  }
  return createClient({
    url: `${origin}/trpc`,
    WebSocket: FromIp as unknown as typeof globalThis.WebSocket,
    fetch: (input, init) => {
      const headers = new Headers(init?.headers);
      headers.set('x-forwarded-for', ip);
      return fetch(input, { ...init, headers });
    },
  });
}

interface Seen {
  ids: number[];
  ends: Map<string, string>;
}

const ARC_TESTNET = 5042002;

describe('a three-instance deployment behind HAProxy', () => {
  let d: Deployment;
  let sql: postgres.Sql;
  let evm: TestEvm;
  let usdc: `0x${string}`;
  let depositAddress: `0x${string}`;

  /** Which live instances say they are the active deposit watcher (their own /metrics). */
  async function activeWatchers(): Promise<string[]> {
    const active: string[] = [];
    for (const s of d.servers) {
      if (s.child.exitCode !== null || s.child.signalCode !== null) continue;
      const text = await fetch(`http://127.0.0.1:${s.port}/metrics`)
        .then((r) => r.text())
        .catch(() => '');
      if (/^smartspace_payments_watcher_active 1$/m.test(text)) active.push(s.name);
    }
    return active;
  }
  const report: string[] = [];
  const errors = new Map<string, number>();
  const count = (kind: string) => errors.set(kind, (errors.get(kind) ?? 0) + 1);

  beforeAll(async () => {
    const redis = new Redis(REDIS_URL);
    await redis.flushdb();
    redis.disconnect();
    evm = await startTestEvm({ chainId: ARC_TESTNET });
    const [treasury] = evm.accounts;
    if (!treasury) throw new Error('no accounts');
    usdc = await evm.deploy(treasury, 'TestToken', ['USD Coin', 'USDC', 6, 10n ** 12n]);
    // An account nobody sends from in this test: the treasury's deposit address.
    depositAddress = (evm.accounts.at(-1) ?? treasury).address;
    d = await startDeployment({
      instances: 3,
      redisUrl: REDIS_URL,
      env: {
        RATE_LIMIT_PER_MINUTE: String(RATE_LIMIT),
        MODEL_PRICES: JSON.stringify({ 'mock-echo': { input: '0', output: '1000' } }),
        CHAIN_ID: String(ARC_TESTNET),
        CHAIN_RPC_URL: evm.url,
        USDC_ADDRESS: usdc,
        DEPOSIT_ADDRESS: depositAddress,
        CHAIN_CONFIRMATIONS: '1',
        PAYMENTS_WATCH_INTERVAL_MS: '500',
      },
    });
    if (!d.database.url) throw new Error('needs PostgreSQL');
    sql = postgres(d.database.url, { max: 2, onnotice: () => {} });
  }, 180_000);

  afterAll(async () => {
    await sql?.end();
    await d?.close();
    await evm?.close();
    if (report.length > 0) console.log(`\n${report.join('\n')}`);
  });

  it('holds the per-IP rate limit across instances (Redis)', async () => {
    const served = new Map<string, number>();
    let ok = 0;
    let limited = 0;
    for (let i = 0; i < RATE_LIMIT + 20; i++) {
      const res = await fetch(`${d.origin}/docs/openapi.json`, {
        headers: { 'x-forwarded-for': '203.0.113.99' },
      });
      await res.arrayBuffer();
      if (res.status === 200) ok++;
      else if (res.status === 429) limited++;
      const by = res.headers.get('x-served-by') ?? '?';
      served.set(by, (served.get(by) ?? 0) + 1);
    }
    expect(ok).toBe(RATE_LIMIT);
    expect(limited).toBe(20);
    expect(served.size).toBe(3);
    report.push(
      `rate limit ${RATE_LIMIT}/min/IP across ${served.size} instances: ${ok} allowed, ${limited} refused (429)`,
    );
  });

  it('keeps chat, subscriptions and the books whole through a crash and a restart', async () => {
    const owner = clientFrom(d.origin, '198.51.100.1');
    const session = await owner.auth.register.mutate({
      email: `cluster-owner-${randomUUID().slice(0, 8)}@example.com`,
      password: PASSWORD,
      name: 'Owner',
    });
    expect(session.user.id).toBeTruthy();
    const billing = await owner.projects.create.mutate({ name: 'Budgeted' });
    await owner.policies.update.mutate({ projectId: billing.id, maxOutputTokens: 2 });
    await owner.budgets.setLimit.mutate({
      projectId: billing.id,
      scope: 'project',
      period: 'month',
      amount: String((AFFORDED * 2000) / 1_000_000),
    });
    const { secret } = await owner.apiKeys.create.mutate({
      projectId: billing.id,
      name: 'load',
      role: 'member',
    });

    // Users, each with a conversation and a live subscription through the proxy.
    const users = await Promise.all(
      Array.from({ length: USERS }, async (_, u) => {
        const client = clientFrom(d.origin, `198.51.100.${10 + u}`);
        await client.auth.register.mutate({
          email: `cluster-${u}-${randomUUID().slice(0, 8)}@example.com`,
          password: PASSWORD,
          name: `User ${u}`,
        });
        const project = await client.projects.create.mutate({ name: `P${u}` });
        const conversation = await client.chat.conversations.create.mutate({
          projectId: project.id,
          model: 'mock-echo',
        });
        const seen: Seen = { ids: [], ends: new Map() };
        // From the topic's start: whatever happens before the socket is up is replayed.
        const subscription = client.chat.onEvent.subscribe(
          { conversationId: conversation.id, lastEventId: '0' },
          {
            onData(t) {
              seen.ids.push(Number(t.id));
              const e = t.data as { type: string; replyId?: string; message?: { id: string } };
              if (e.type === 'reply.completed' && e.message) seen.ends.set(e.message.id, e.type);
              if (e.type === 'reply.failed' && e.replyId) seen.ends.set(e.replyId, e.type);
            },
            onError: () => count('subscription error'),
          },
        );
        return { client, conversation, seen, subscription };
      }),
    );
    await new Promise((r) => setTimeout(r, 500));

    const waitEnd = async (seen: Seen, replyId: string) => {
      const deadline = Date.now() + SETTLE_MS;
      while (!seen.ends.has(replyId)) {
        if (Date.now() > deadline) {
          const [row] = await sql<{ status: string; heartbeat_at: Date | null }[]>`
            select status, heartbeat_at from messages where id = ${replyId}`;
          throw new Error(
            `a reply did not end within ${SETTLE_MS / 1000} s (${row?.status}, heartbeat ${row?.heartbeat_at?.toISOString() ?? 'none'}, now ${new Date().toISOString()})`,
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      return seen.ends.get(replyId);
    };

    let sends = 0;
    let killedAt = 0;
    const chat = Promise.all(
      users.map(async (u, i) => {
        const outcomes: string[] = [];
        for (let s = 0; s < SENDS; s++) {
          try {
            const sent = await u.client.chat.send.mutate({
              conversationId: u.conversation.id,
              content: `message ${s} from user ${i}, long enough to stream for a while`,
            });
            sends++;
            outcomes.push((await waitEnd(u.seen, sent.replyId)) ?? '?');
          } catch (err) {
            // A send that met the crash (its connection cut) is retried, as a client would.
            count(`send: ${(err as Error).message.slice(0, 140)}`);
            s--;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
        return outcomes;
      }),
    );

    const anthropic = [0, 1, 2, 3].map(
      (n) =>
        new Anthropic({
          apiKey: secret,
          baseURL: d.origin,
          maxRetries: 0,
          defaultHeaders: { 'x-forwarded-for': `192.0.2.${n + 1}` },
        }),
    );
    const calls = Promise.all(
      Array.from({ length: CALLS }, async (_, n) => {
        await new Promise((r) => setTimeout(r, n * 60));
        try {
          await anthropic[n % 4]?.messages.create({
            model: 'mock-echo',
            max_tokens: 2,
            messages: [{ role: 'user', content: 'go' }],
          });
          return 'ok';
        } catch (err) {
          const status = (err as { status?: number }).status;
          return status === 403 ? 'budget' : `error ${status ?? (err as Error).name}`;
        }
      }),
    );

    // The deposit watcher: one active instance, sampled throughout the run.
    let leaders = await activeWatchers();
    for (let i = 0; i < 100 && leaders.length !== 1; i++) {
      await new Promise((r) => setTimeout(r, 100));
      leaders = await activeWatchers();
    }
    expect(leaders).toHaveLength(1);
    const victim = leaders[0] as string;
    let mostAtOnce = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        mostAtOnce = Math.max(mostAtOnce, (await activeWatchers()).length);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    // The crash, once traffic is flowing: the active watcher's instance.
    while (sends < USERS) await new Promise((r) => setTimeout(r, 20));
    killedAt = Date.now();
    const sendsAtKill = sends;
    await d.kill(victim);
    let successor: string[] = [];
    while (successor.length === 0 && Date.now() - killedAt < 60_000) {
      await new Promise((r) => setTimeout(r, 100));
      successor = await activeWatchers();
    }
    const watcherFailoverMs = Date.now() - killedAt;
    expect(successor).toHaveLength(1);
    expect(successor[0]).not.toBe(victim);
    const t0 = Date.now();
    await d.restart(victim);
    const restartMs = Date.now() - t0;
    const routedMs = await d.routed(victim);

    // The new watcher credits what arrives now (recorded as unmatched: no wallet sent it).
    const [, payer] = evm.accounts;
    if (!payer) throw new Error('no payer');
    const [treasury] = evm.accounts;
    if (!treasury) throw new Error('no treasury');
    await evm.write({
      from: treasury,
      to: usdc,
      contract: 'TestToken',
      functionName: 'transfer',
      args: [payer.address, 5_000_000n],
    });
    const txHash = await evm.write({
      from: payer,
      to: usdc,
      contract: 'TestToken',
      functionName: 'transfer',
      args: [depositAddress, 5_000_000n],
    });
    await evm.mine(2);
    let recorded: { status: string }[] = [];
    for (let i = 0; i < 100 && recorded.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      recorded = await sql<{ status: string }[]>`
        select status from payments where tx_hash = ${txHash}`;
    }
    expect(recorded).toHaveLength(1);

    const outcomes = (await chat).flat();
    const callOutcomes = await calls;
    for (const u of users) u.subscription.unsubscribe();

    // Every reply ended; each subscriber saw its conversation's stored events exactly once, in order.
    expect(outcomes).toHaveLength(USERS * SENDS);
    for (const u of users) {
      const stored = await sql<{ id: string }[]>`
        select id from events where topic = ${`conversation:${u.conversation.id}`} order by id`;
      expect(u.seen.ids).toEqual(stored.map((r) => Number(r.id)));
    }
    // Calls: within the budget, refused beyond it; a call cut by the crash is an error.
    const ok = callOutcomes.filter((o) => o === 'ok').length;
    const budget = callOutcomes.filter((o) => o === 'budget').length;
    expect(ok).toBeLessThanOrEqual(AFFORDED);
    expect(ok + budget).toBeGreaterThanOrEqual(CALLS - 3);

    // The books, once the sweepers released what the dead instance held.
    const deadline = Date.now() + SETTLE_MS;
    let books: { reserved: string; spent: string; charged: string; inProgress: number };
    for (;;) {
      const [row] = await sql<
        { reserved: string; spent: string; charged: string; in_progress: number }[]
      >`
        select
          (select coalesce(sum(u.reserved), 0)::text from budget_usage u join budget_limits l
             on l.id = u.limit_id where l.project_id = ${billing.id}) as reserved,
          (select coalesce(sum(u.spent), 0)::text from budget_usage u join budget_limits l
             on l.id = u.limit_id where l.project_id = ${billing.id}) as spent,
          (select coalesce(sum(cost), 0)::text from api_requests
             where project_id = ${billing.id}) as charged,
          (select count(*)::int from api_requests where status = 'in_progress') as in_progress`;
      books = {
        reserved: row?.reserved ?? '?',
        spent: row?.spent ?? '?',
        charged: row?.charged ?? '?',
        inProgress: row?.in_progress ?? -1,
      };
      if (books.reserved === '0' && books.inProgress === 0) break;
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(books).toMatchObject({ reserved: '0', inProgress: 0 });
    expect(books.spent).toBe(books.charged);
    expect(BigInt(books.spent)).toBeLessThanOrEqual(BigInt(AFFORDED * 2000));
    const [streaming] = await sql<{ n: number }[]>`
      select count(*)::int as n from messages where status = 'streaming'`;
    expect(streaming?.n).toBe(0);

    sampling = false;
    await sampler;
    expect(mostAtOnce).toBe(1);
    expect(await activeWatchers()).toHaveLength(1);

    for (const u of users) await closeClient(u.client);
    await closeClient(owner);
    const completed = outcomes.filter((o) => o === 'reply.completed').length;
    report.push(
      `chat: ${USERS} users × ${SENDS} replies through the proxy: ${completed} completed, ${outcomes.length - completed} failed (cut by the crash); every subscriber saw every stored event once, in order`,
      `budgeted calls: ${CALLS} through /v1/messages: ${ok} ok (afforded ${AFFORDED}), ${budget} refused by the budget, ${CALLS - ok - budget} cut by the crash; spent ${books.spent} = usage ${books.charged} micro-USDC, nothing reserved`,
      `crash: ${victim} (the active deposit watcher) SIGKILLed after ${sendsAtKill} sends; ${successor[0]} watching ${watcherFailoverMs} ms later (never two at once; a deposit sent then was recorded: ${recorded[0]?.status}); ${victim} started again and ready in ${restartMs} ms, routed by HAProxy ${routedMs} ms later; the run took ${Math.round((Date.now() - killedAt) / 1000)} s after the crash`,
      `errors by kind: ${errors.size === 0 ? 'none' : [...errors].map(([k, n]) => `${k} ×${n}`).join('; ')}`,
    );
  }, 300_000);
});
