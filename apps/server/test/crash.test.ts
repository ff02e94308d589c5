import { createTestDatabase } from '@smartspace/api/testing';
import { closeClient, type SmartSpaceClient } from '@smartspace/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ageHeartbeats,
  crash,
  type Instance,
  multiInstanceEnabled,
  PASSWORD,
  startInstance,
} from './instances';

/**
 * Server processes SIGKILLed in the middle of work, then a
 * process started on the same database: what the dead one was doing ends cleanly, its
 * streamed text is not lost, and no money stays reserved.
 *
 * The thresholds after which a dead process's work is swept (30 s for replies and runs, 60 s
 * for model calls) are aged away with `ageHeartbeats`, so the restarted process's start-up
 * sweep recovers everything at once.
 */

/** PARTIAL_FLUSH_MS of packages/api/src/modules/chat/reply-progress.ts. */
const PARTIAL_FLUSH_MS = 500;
/** A flush's own round trip, and event-loop jitter on a busy 2-core machine. */
const WRITE_TOLERANCE_MS = 300;
// mock-echo at 1000 micro-USDC per output token: every call holds money while it runs.
const ENV = { MODEL_PRICES: JSON.stringify({ 'mock-echo': { input: '0', output: '1000' } }) };
const OLDER_THAN_EVERY_SWEEP_THRESHOLD_MS = 120_000;

let databaseUrl: string;
let closeDatabase: () => Promise<void>;
const started: Instance[] = [];
const clients: SmartSpaceClient[] = [];
beforeAll(async () => {
  const db = await createTestDatabase();
  if (!db.url) throw new Error('needs PostgreSQL (TEST_DATABASE_URL)');
  databaseUrl = db.url;
  closeDatabase = () => db.close();
});
afterEach(async () => {
  for (const c of clients.splice(0)) await closeClient(c);
  await Promise.all(started.splice(0).map(crash));
});
afterAll(() => closeDatabase?.());

async function start(): Promise<Instance> {
  const instance = await startInstance(databaseUrl, ENV);
  started.push(instance);
  return instance;
}

/** A client of `instance` signed in as `email` (registered on first use). */
async function signedIn(instance: Instance, email: string, register = false) {
  const client = instance.client();
  clients.push(client);
  if (register) await client.auth.register.mutate({ email, password: PASSWORD, name: email });
  else await client.auth.login.mutate({ email, password: PASSWORD });
  return client;
}

async function projectWithBudget(client: SmartSpaceClient, name: string) {
  const { id } = await client.projects.create.mutate({ name });
  await client.budgets.setLimit.mutate({
    projectId: id,
    scope: 'project',
    period: 'total',
    amount: '100',
  });
  return id;
}

async function expectNothingReserved(client: SmartSpaceClient, projectId: string) {
  const budget = await client.budgets.get.query({ projectId });
  expect(budget.reserved).toBe('0.000000');
  expect(budget.limits).toHaveLength(1);
  expect(budget.limits[0]?.reserved).toBe('0.000000');
  const { items } = await client.usage.requests.query({ projectId, limit: 100 });
  expect(items.filter((r) => r.status === 'in_progress')).toEqual([]);
  return items;
}

describe.runIf(multiInstanceEnabled)('a process SIGKILLed mid-work', () => {
  it('mid-reply: the reply is failed reply.interrupted, keeping the streamed text up to a flush ago', async () => {
    const [a, b] = await Promise.all([start(), start()]);
    const email = 'reply-crash@example.com';
    const onA = await signedIn(a, email, true);
    const onB = await signedIn(b, email);
    const projectId = await projectWithBudget(onA, 'Reply crash');
    const conversation = await onA.chat.conversations.create.mutate({ projectId });

    // Watched from A, with the time each delta arrived; the reply runs in B.
    type Event = { type: string; text?: string; appCode?: string };
    const deltas: { text: string; at: number }[] = [];
    let failed: (e: Event) => void = () => {};
    const failedEvent = new Promise<Event>((resolve) => {
      failed = resolve;
    });
    await new Promise<void>((resolve, reject) => {
      onA.chat.onEvent.subscribe(
        { conversationId: conversation.id },
        {
          onStarted: () => resolve(),
          onData(t) {
            const event = t.data as Event;
            if (event.type === 'reply.delta')
              deltas.push({ text: event.text ?? '', at: Date.now() });
            if (event.type === 'reply.failed') failed(event);
          },
          onError: reject,
        },
      );
    });
    // 2000 words at the mock's 5 ms per word: over ten seconds of streaming.
    const words = Array.from({ length: 2_000 }, (_, i) => `w${i}`).join(' ');
    const { replyId } = await onB.chat.send.mutate({
      conversationId: conversation.id,
      content: words,
    });
    // Killed well inside the reply, after a few flushes, before the 5 s heartbeat.
    await expect.poll(() => deltas.length, { timeout: 30_000, interval: 10 }).toBeGreaterThan(0);
    const firstAt = deltas[0]?.at ?? Date.now();
    await new Promise((r) => setTimeout(r, firstAt + 3 * PARTIAL_FLUSH_MS - Date.now()));
    const killedAt = Date.now();
    await crash(b);
    const reply = async () =>
      (await onA.chat.messages.list.query({ conversationId: conversation.id })).items.find(
        (m) => m.id === replyId,
      );
    expect(await reply()).toMatchObject({ status: 'streaming' });

    await ageHeartbeats(databaseUrl, OLDER_THAN_EVERY_SWEEP_THRESHOLD_MS);
    await start();
    expect(await failedEvent).toMatchObject({ type: 'reply.failed', appCode: 'reply.interrupted' });
    const swept = await reply();
    expect(swept).toMatchObject({ status: 'failed', errorCode: 'reply.interrupted' });
    const stored = swept?.content ?? '';

    // Non-empty, cut mid-reply, and exactly the first n deltas subscribers were sent.
    expect(stored.length).toBeGreaterThan(0);
    expect(`Echo: ${words}`.startsWith(stored)).toBe(true);
    expect(stored.length).toBeLessThan(`Echo: ${words}`.length);
    const prefixes = deltas.map((_, i) => ({
      text: deltas
        .slice(0, i + 1)
        .map((d) => d.text)
        .join(''),
      next: deltas[i + 1],
    }));
    const cut = prefixes.find((p) => p.text === stored);
    expect(cut).toBeDefined();
    // What the subscriber had at kill time but the store lacks arrived less than one flush
    // interval (plus the write's own time) before the kill.
    const firstMissing = cut?.next;
    if (firstMissing && firstMissing.at < killedAt) {
      expect(killedAt - firstMissing.at).toBeLessThanOrEqual(PARTIAL_FLUSH_MS + WRITE_TOLERANCE_MS);
    }

    const calls = await expectNothingReserved(onA, projectId);
    expect(calls).toMatchObject([{ status: 'failed', errorCode: 'gateway.interrupted' }]);
  }, 150_000);

  it('mid-run: the run resumes from its last completed step and succeeds', async () => {
    // One process, so it is the one that claims the run.
    const first = await start();
    const email = 'run-crash@example.com';
    const c1 = await signedIn(first, email, true);
    const projectId = await projectWithBudget(c1, 'Run crash');
    const agent = await c1.agents.create.mutate({
      projectId,
      name: 'Clock',
      instructions: 'Tell the time.',
      model: 'mock-echo',
      tools: ['current_time'],
    });
    // Step 1 calls the tool CALLS times; step 2 answers with one "Result: …" line per call,
    // streamed word by word: long enough to be killed in.
    const CALLS = 100;
    const input = Array.from({ length: CALLS }, () => '[[tool:current_time]]').join(' ');
    const run = await c1.runs.start.mutate({ agentId: agent.id, input });
    const seen: string[] = [];
    await new Promise<void>((resolve, reject) => {
      c1.runs.onProgress.subscribe(
        { runId: run.id, lastEventId: '0' },
        {
          onData(t) {
            const event = t.data as { type: string };
            seen.push(event.type);
            if (event.type === 'text.delta') resolve();
            if (event.type.startsWith('run.') && event.type !== 'run.started') {
              reject(new Error(`the run ended (${event.type}) before it could be killed`));
            }
          },
          onError: reject,
        },
      );
    });
    // A model call is on record as in progress once it has run 50 ms: killed after that.
    await expect
      .poll(
        async () =>
          (await c1.usage.requests.query({ projectId, limit: 10 })).items.some(
            (r) => r.status === 'in_progress',
          ),
        { timeout: 5_000, interval: 20 },
      )
      .toBe(true);
    await crash(first);
    expect(seen.filter((t) => t === 'tool.result')).toHaveLength(CALLS);

    await ageHeartbeats(databaseUrl, OLDER_THAN_EVERY_SWEEP_THRESHOLD_MS);
    const second = await start();
    const c2 = await signedIn(second, email);
    await expect
      .poll(async () => (await c2.runs.get.query({ runId: run.id })).status, {
        timeout: 60_000,
        interval: 100,
      })
      .toMatch(/succeeded|failed|cancelled/);
    const done = await c2.runs.get.query({ runId: run.id });
    expect(done.status).toBe('succeeded');
    const lines = String(done.output).split('\n');
    expect(lines).toHaveLength(CALLS);
    for (const line of lines) expect(line).toMatch(/^Result: \{"iso":"[^"]+","unix":\d+\}$/);
    // Resumed, not redone: the tools ran once; the interrupted model step left no step, and
    // was run again from the saved transcript.
    expect(done.steps.map((s) => s.kind)).toEqual(['model', ...Array(CALLS).fill('tool'), 'model']);

    // What a subscriber replaying the run sees: the interrupted attempt's text, then the run
    // starting again and the same step streaming in full.
    type Event = { type: string; step?: number; text?: string };
    const replay: Event[] = [];
    await new Promise<void>((resolve, reject) => {
      c2.runs.onProgress.subscribe(
        { runId: run.id, lastEventId: '0' },
        {
          onData(t) {
            replay.push(t.data as Event);
            if ((t.data as Event).type === 'run.completed') resolve();
          },
          onError: reject,
        },
      );
    });
    expect(replay.filter((e) => e.type === 'run.started')).toHaveLength(2);
    const steps = replay.filter((e) => e.type === 'step.started').map((e) => e.step);
    expect(steps).toEqual([0, CALLS + 1, CALLS + 1]);
    const lastStep = replay.findLastIndex((e) => e.type === 'step.started');
    const resumedText = replay
      .slice(lastStep)
      .map((e) => (e.type === 'text.delta' ? e.text : ''))
      .join('');
    expect(resumedText).toBe(done.output);

    const calls = await expectNothingReserved(c2, projectId);
    expect(calls.map((r) => r.status).sort()).toEqual(['failed', 'succeeded', 'succeeded']);
    expect(calls.find((r) => r.status === 'failed')?.errorCode).toBe('gateway.interrupted');
  }, 150_000);
});
