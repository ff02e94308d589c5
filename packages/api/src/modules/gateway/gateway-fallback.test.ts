import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ModelError } from '../../ai/provider';
import { type FakeAnthropic, startFakeAnthropic } from '../../ai/testing/fake-anthropic';
import { type FakeOpenAI, startFakeOpenAI } from '../../ai/testing/fake-openai';
import { createTestApi, type TestApi } from '../../testing';
import { budgetUsage } from '../budgets/budgets.table';
import { summary } from '../usage/usage.service';
import { apiRequests } from '../usage/usage.table';
import { usageCost } from './gateway';

/**
 * Fallback routes, through the real gateway, database and SDKs against local upstreams:
 * `primary` (OpenAI-compatible, 1 / 4 USD per MTok) falls back to `secondary` (Anthropic,
 * 2 / 10), which falls back to nothing. One micro-USDC per token per USD/MTok, so a reply
 * of 100 input and 10 output tokens costs 140 on primary and 300 on secondary.
 */

let openai: FakeOpenAI;
let anthropic: FakeAnthropic;
let t: TestApi;

beforeAll(async () => {
  openai = await startFakeOpenAI();
  anthropic = await startFakeAnthropic();
  t = await createTestApi(
    {
      MODEL_ROUTES: JSON.stringify({
        primary: {
          provider: 'openai',
          upstreamModel: 'gpt-up',
          baseUrl: openai.url,
          apiKeyEnv: 'PRIMARY_KEY',
          prices: { input: '1', output: '4' },
          contextWindow: 100_000,
          maxOutputTokens: 1_000,
          fallbacks: ['secondary'],
          maxRetries: 0,
        },
        secondary: {
          provider: 'anthropic',
          upstreamModel: 'claude-sonnet-5-5',
          baseUrl: anthropic.url,
          apiKeyEnv: 'SECONDARY_KEY',
          prices: { input: '2', output: '10', cacheWrite: '2.5', cacheRead: '0.2' },
          contextWindow: 100_000,
          maxOutputTokens: 1_000,
          maxRetries: 0,
        },
      }),
      PRIMARY_KEY: openai.apiKey,
      SECONDARY_KEY: anthropic.apiKey,
    },
    { mockChunkDelayMs: 0 },
  );
});
afterAll(async () => {
  await t.close();
  await openai.close();
  await anthropic.close();
});
beforeEach(() => {
  openai.reset();
  anthropic.reset();
});

async function project(name: string) {
  const owner = await t.signUp(name);
  const c = t.caller(owner.accessToken);
  const p = await c.projects.create({ name });
  const limit = await c.budgets.setLimit({
    projectId: p.id,
    scope: 'project',
    period: 'month',
    amount: '1',
  });
  return { c, userId: owner.user.id, projectId: p.id, limitId: limit.id };
}

async function run(p: { userId: string; projectId: string }, model = 'primary') {
  let text = '';
  let error: unknown;
  try {
    for await (const ev of t.api.deps.gateway.stream({
      projectId: p.projectId,
      userId: p.userId,
      source: 'api',
      model,
      messages: [{ role: 'user', content: 'hello' }],
      maxOutputTokens: 100,
    })) {
      if (ev.type === 'delta') text += ev.text;
    }
  } catch (err) {
    error = err;
  }
  return { text, error };
}

async function rows(projectId: string) {
  const all = await t.api.deps.db
    .select()
    .from(apiRequests)
    .where(eq(apiRequests.projectId, projectId));
  return all
    .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())
    .map((r) => ({
      model: r.model,
      status: r.status,
      errorCode: r.errorCode,
      cost: r.cost,
      reserved: r.reserved,
    }));
}

/** The limit's row once this instance's lease went back (what it held in advance is then 0). */
async function budget(limitId: string) {
  await t.api.deps.gateway.releaseLeases();
  const [u] = await t.api.deps.db
    .select()
    .from(budgetUsage)
    .where(eq(budgetUsage.limitId, limitId));
  return { spent: u?.spent ?? 0n, reserved: u?.reserved ?? 0n };
}

describe('fallback routes', () => {
  it('falls back from a 503 to the next route: two rows, the failed one free, nothing held', async () => {
    const p = await project('Fallback 503');
    openai.script({ kind: 'error', status: 503, message: 'busy' });
    anthropic.script({
      kind: 'reply',
      chunks: ['from ', 'secondary'],
      inputTokens: 100,
      outputTokens: 10,
    });
    const out = await run(p);
    expect(out.error).toBeUndefined();
    expect(out.text).toBe('from secondary');
    expect(openai.requests).toHaveLength(1);
    expect(anthropic.requests).toHaveLength(1);
    expect(await rows(p.projectId)).toEqual([
      { model: 'primary', status: 'failed', errorCode: 'model.overloaded', cost: 0n, reserved: 0n },
      { model: 'secondary', status: 'succeeded', errorCode: null, cost: 300n, reserved: 0n },
    ]);
    expect(await budget(p.limitId)).toEqual({ spent: 300n, reserved: 0n });
  });

  it('falls back from an Anthropic 529 to an OpenAI-compatible route', async () => {
    // The reverse chain, declared for this test by its own api instance.
    const api = await createTestApi(
      {
        MODEL_ROUTES: JSON.stringify({
          claude: {
            provider: 'anthropic',
            upstreamModel: 'claude-sonnet-5-5',
            baseUrl: anthropic.url,
            apiKeyEnv: 'A_KEY',
            prices: { input: '2', output: '10' },
            contextWindow: 100_000,
            maxOutputTokens: 1_000,
            fallbacks: ['gpt'],
            maxRetries: 0,
          },
          gpt: {
            provider: 'openai',
            upstreamModel: 'gpt-up',
            baseUrl: openai.url,
            apiKeyEnv: 'O_KEY',
            prices: { input: '1', output: '4' },
            contextWindow: 100_000,
            maxOutputTokens: 1_000,
          },
        }),
        A_KEY: anthropic.apiKey,
        O_KEY: openai.apiKey,
      },
      { mockChunkDelayMs: 0 },
    );
    try {
      const owner = await api.signUp('Reverse');
      const projectId = (await api.caller(owner.accessToken).projects.create({ name: 'R' })).id;
      anthropic.script({ kind: 'error', status: 529, type: 'overloaded_error' });
      openai.script({
        kind: 'reply',
        chunks: ['gpt here'],
        promptTokens: 100,
        completionTokens: 10,
      });
      let text = '';
      for await (const ev of api.api.deps.gateway.stream({
        projectId,
        userId: owner.user.id,
        source: 'api',
        model: 'claude',
        messages: [{ role: 'user', content: 'hi' }],
        maxOutputTokens: 50,
      })) {
        if (ev.type === 'delta') text += ev.text;
      }
      expect(text).toBe('gpt here');
      const all = await api.api.deps.db
        .select()
        .from(apiRequests)
        .where(eq(apiRequests.projectId, projectId));
      expect(
        all
          .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())
          .map((r) => [r.model, r.status, r.errorCode, r.cost]),
      ).toEqual([
        ['claude', 'failed', 'model.overloaded', 0n],
        ['gpt', 'succeeded', null, 140n],
      ]);
    } finally {
      await api.close();
    }
  });

  it('falls back on 429 and on an unreachable upstream too', async () => {
    const p = await project('Fallback 429');
    openai.script({ kind: 'error', status: 429, message: 'slow down' });
    anthropic.script({ kind: 'reply', chunks: ['ok'], inputTokens: 100, outputTokens: 10 });
    expect((await run(p)).text).toBe('ok');
    expect((await rows(p.projectId)).map((r) => r.errorCode)).toEqual(['model.rate_limited', null]);
  });

  it('does not switch after the first token: the call fails as it would without fallbacks', async () => {
    const p = await project('No late switch');
    openai.script({ kind: 'cut', chunks: ['half a rep'] });
    const out = await run(p);
    expect(out.text).toBe('half a rep');
    expect(out.error).toBeInstanceOf(ModelError);
    expect(out.error).toMatchObject({ code: 'model.stream_interrupted' });
    expect(anthropic.requests).toHaveLength(0);
    const [row, ...rest] = await rows(p.projectId);
    expect(rest).toEqual([]);
    expect(row).toMatchObject({ model: 'primary', status: 'failed', reserved: 0n });
    // Charged for what was evidently produced, and only that.
    expect(row?.cost).toBeGreaterThan(0n);
    expect(await budget(p.limitId)).toEqual({ spent: row?.cost, reserved: 0n });
  });

  it('does not fall back from a bad request', async () => {
    const p = await project('No fallback on 400');
    openai.script({ kind: 'error', status: 400, message: 'bad field' });
    const out = await run(p);
    expect(out.error).toMatchObject({ code: 'model.bad_request' });
    expect(anthropic.requests).toHaveLength(0);
    expect(await rows(p.projectId)).toHaveLength(1);
  });

  it('when every route fails, throws the last failure and holds nothing', async () => {
    const p = await project('All fail');
    openai.script({ kind: 'error', status: 503 });
    anthropic.script({ kind: 'error', status: 429, type: 'rate_limit_error' });
    const out = await run(p);
    expect(out.error).toMatchObject({ code: 'model.rate_limited' });
    expect(await rows(p.projectId)).toEqual([
      { model: 'primary', status: 'failed', errorCode: 'model.overloaded', cost: 0n, reserved: 0n },
      {
        model: 'secondary',
        status: 'failed',
        errorCode: 'model.rate_limited',
        cost: 0n,
        reserved: 0n,
      },
    ]);
    expect(await budget(p.limitId)).toEqual({ spent: 0n, reserved: 0n });
  });

  it('skips a fallback the policy does not allow', async () => {
    const p = await project('Policy skip');
    await p.c.policies.update({ projectId: p.projectId, allowedModels: ['primary'] });
    openai.script({ kind: 'error', status: 503 });
    const out = await run(p);
    expect(out.error).toMatchObject({ code: 'model.overloaded' });
    expect(anthropic.requests).toHaveLength(0);
    expect((await rows(p.projectId)).map((r) => r.model)).toEqual(['primary']);
  });
});

describe('prompt-cache pricing', () => {
  it('prices cache writes and reads at the route rates; the budget is charged exactly that', async () => {
    const p = await project('Cache pricing');
    anthropic.script({
      kind: 'reply',
      chunks: ['cached answer'],
      inputTokens: 100,
      cacheWriteTokens: 1000,
      cacheReadTokens: 2000,
      outputTokens: 10,
    });
    const out = await run(p, 'secondary');
    expect(out.error).toBeUndefined();
    // 100 × 2 + 1000 × 2.5 + 2000 × 0.2 + 10 × 10 micro-USDC.
    expect(await rows(p.projectId)).toEqual([
      { model: 'secondary', status: 'succeeded', errorCode: null, cost: 3200n, reserved: 0n },
    ]);
    const [row] = await t.api.deps.db
      .select()
      .from(apiRequests)
      .where(eq(apiRequests.projectId, p.projectId));
    expect(row).toMatchObject({ inputTokens: 3100, cacheWriteTokens: 1000, cacheReadTokens: 2000 });
    const byModel = await summary({
      db: t.api.deps.db,
      projectId: p.projectId,
      from: new Date(Date.now() - 60_000),
      to: new Date(Date.now() + 60_000),
      groupBy: 'model',
    });
    expect(byModel).toEqual([
      {
        key: 'secondary',
        requests: 1,
        inputTokens: 3100,
        outputTokens: 10,
        cacheWriteTokens: 1000,
        cacheReadTokens: 2000,
        cost: '0.003200',
      },
    ]);
    expect(await budget(p.limitId)).toEqual({ spent: 3200n, reserved: 0n });
  });

  it('rounds up once, and prices cache tokens at the input rate when no cache rate is set', () => {
    const usage = { inputTokens: 3, outputTokens: 1, cacheWriteTokens: 1, cacheReadTokens: 1 };
    const prices = { inputPricePerMTok: '0.5', outputPricePerMTok: '0.25' };
    // 3 × 0.5 + 1 × 0.25 = 1.75 → 2
    expect(usageCost(prices, usage)).toBe(2n);
    const cached = { ...prices, cacheWritePricePerMTok: '1', cacheReadPricePerMTok: '0.05' };
    // 1 × 0.5 + 1 × 1 + 1 × 0.05 + 1 × 0.25 = 1.8 → 2
    expect(usageCost(cached, usage)).toBe(2n);
    // 10 reads × 0.05 = 0.5 → 1; at the input rate 10 × 0.5 = 5.
    const reads = { inputTokens: 10, outputTokens: 0, cacheReadTokens: 10 };
    expect(usageCost(cached, reads)).toBe(1n);
    expect(usageCost(prices, reads)).toBe(5n);
  });
});
