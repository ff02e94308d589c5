import Anthropic from '@anthropic-ai/sdk';
// The api package's stand-ins for the upstreams (real HTTP servers speaking each protocol).
import {
  type FakeAnthropic,
  type FakeOpenAI,
  startFakeAnthropic,
  startFakeOpenAI,
} from '@smartspace/api/testing';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type CompatServer,
  type KeyedProject,
  requestRows,
  startCompatServer,
} from './compat-harness';

/**
 * Models routed (MODEL_ROUTES) to an OpenAI-compatible upstream and to an Anthropic one,
 * called through both SmartSpace endpoints with the real SDKs: conversion both ways, tools,
 * prompt caching, usage and billing. `house` costs 1 / 4 USD per MTok: 1 micro-USDC per
 * input token, 4 per output token.
 */

const UPSTREAM_SECRET = 'sk-upstream-secret-never-shown';

describe('routed models', () => {
  let upstream: FakeOpenAI;
  let claude: FakeAnthropic;
  let server: CompatServer;
  let p: KeyedProject;
  let anthropic: Anthropic;
  let openai: OpenAI;

  beforeAll(async () => {
    upstream = await startFakeOpenAI({ apiKey: UPSTREAM_SECRET });
    claude = await startFakeAnthropic();
    server = await startCompatServer(0, {
      MODEL_ROUTES: JSON.stringify({
        house: {
          provider: 'openai',
          upstreamModel: 'gpt-up',
          baseUrl: upstream.url,
          apiKeyEnv: 'HOUSE_KEY',
          prices: { input: '1', output: '4' },
          contextWindow: 100_000,
          maxOutputTokens: 4_000,
          maxRetries: 0,
        },
        'cached-claude': {
          provider: 'anthropic',
          upstreamModel: 'claude-sonnet-5-5',
          baseUrl: claude.url,
          apiKeyEnv: 'CLAUDE_KEY',
          prices: { input: '2', output: '10', cacheWrite: '2.5', cacheRead: '0.2' },
          contextWindow: 200_000,
          maxOutputTokens: 4_000,
          maxRetries: 0,
        },
      }),
      HOUSE_KEY: UPSTREAM_SECRET,
      CLAUDE_KEY: claude.apiKey,
    });
    p = await server.project('Routed');
    anthropic = new Anthropic({ apiKey: p.secret, baseURL: server.origin, maxRetries: 0 });
    openai = new OpenAI({ apiKey: p.secret, baseURL: `${server.origin}/v1`, maxRetries: 0 });
  }, 30_000);
  afterAll(async () => {
    await server?.close();
    await upstream?.close();
    await claude?.close();
  });
  beforeEach(() => {
    upstream.reset();
    claude.reset();
  });

  it('is listed by GET /v1/models and models.list, without upstream details or keys', async () => {
    const ids: string[] = [];
    for await (const m of openai.models.list()) ids.push(m.id);
    expect(ids).toContain('house');
    const page = await anthropic.models.list();
    expect(page.data.map((m) => m.id)).toContain('house');
    const raw = await fetch(`${server.origin}/v1/models`, {
      headers: { authorization: `Bearer ${p.secret}` },
    });
    const text = await raw.text();
    expect(text).not.toContain(UPSTREAM_SECRET);
    expect(text).not.toContain('gpt-up');
    const listed = await server.owner.models.list.query();
    expect(listed.find((m) => m.id === 'house')).toMatchObject({
      provider: 'openai',
      inputPricePerMTok: '1',
      outputPricePerMTok: '4',
    });
    expect(JSON.stringify(listed)).not.toContain(UPSTREAM_SECRET);
  });

  it('answers /v1/messages with tool calls from the upstream, billed by its usage', async () => {
    upstream.script({
      kind: 'reply',
      chunks: ['Checking.'],
      calls: [{ id: 'call_1', name: 'weather', arguments: '{"city":"Paris"}' }],
      promptTokens: 100,
      completionTokens: 10,
    });
    // SDK 1.x no longer declares the sampling fields; the endpoint still takes them.
    const params = {
      model: 'house',
      max_tokens: 200,
      temperature: 0.5,
      system: 'Be brief.',
      tools: [{ name: 'weather', input_schema: { type: 'object' as const, properties: {} } }],
      messages: [{ role: 'user' as const, content: 'Weather in Paris?' }],
    };
    const message = await anthropic.messages.create(params);
    expect(message.content).toEqual([
      { type: 'text', text: 'Checking.' },
      { type: 'tool_use', id: 'call_1', name: 'weather', input: { city: 'Paris' } },
    ]);
    expect(message.stop_reason).toBe('tool_use');
    expect(message.usage).toMatchObject({ input_tokens: 100, output_tokens: 10 });
    const sent = upstream.requests[0];
    expect(sent?.apiKey).toBe(UPSTREAM_SECRET);
    expect(sent?.body).toMatchObject({
      model: 'gpt-up',
      temperature: 0.5,
      max_completion_tokens: 200,
      stream_options: { include_usage: true },
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Weather in Paris?' },
      ],
    });
    const rows = await requestRows(server, p.projectId);
    expect(rows.at(-1)).toMatchObject({
      status: 'succeeded',
      source: 'api',
      inputTokens: 100,
      outputTokens: 10,
      cost: '140',
      reserved: '0',
    });
  });

  it('streams /v1/messages and /v1/chat/completions from the upstream', async () => {
    upstream.script(
      { kind: 'reply', chunks: ['Hello', ' there'], promptTokens: 8, completionTokens: 2 },
      { kind: 'reply', chunks: ['Hi', ' again'], promptTokens: 8, completionTokens: 2 },
    );
    const stream = anthropic.messages.stream({
      model: 'house',
      max_tokens: 50,
      messages: [{ role: 'user', content: 'hi' }],
    });
    const final = await stream.finalMessage();
    expect(final.content).toEqual([{ type: 'text', text: 'Hello there' }]);

    const chunks = await openai.chat.completions.create({
      model: 'house',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'hi' }],
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const c of chunks) {
      text += c.choices[0]?.delta.content ?? '';
      if (c.usage) usage = c.usage;
    }
    expect(text).toBe('Hi again');
    expect(usage).toMatchObject({ prompt_tokens: 8, completion_tokens: 2 });
  });

  it('maps an upstream failure to the protocol error, charging nothing and naming no key', async () => {
    upstream.script({ kind: 'error', status: 503, message: 'upstream busy' });
    const call = anthropic.messages.create({
      model: 'house',
      max_tokens: 50,
      messages: [{ role: 'user', content: 'hi' }],
    });
    await expect(call).rejects.toBeInstanceOf(Anthropic.InternalServerError);
    await expect(call).rejects.toThrow(/model\.overloaded/);
    await expect(call).rejects.not.toThrow(new RegExp(UPSTREAM_SECRET));
    const rows = await requestRows(server, p.projectId);
    expect(rows.at(-1)).toMatchObject({
      status: 'failed',
      errorCode: 'model.overloaded',
      cost: '0',
      reserved: '0',
    });
  });

  it('passes cache_control through /v1/messages and reports and prices cache tokens', async () => {
    claude.script({
      kind: 'reply',
      chunks: ['Cached.'],
      inputTokens: 50,
      cacheWriteTokens: 1000,
      cacheReadTokens: 2000,
      outputTokens: 10,
    });
    const params = {
      model: 'cached-claude',
      max_tokens: 100,
      system: [
        { type: 'text' as const, text: 'Rules.' },
        {
          type: 'text' as const,
          text: 'A long manual.',
          cache_control: { type: 'ephemeral' as const },
        },
      ],
      messages: [
        {
          role: 'user' as const,
          content: [
            {
              type: 'text' as const,
              text: 'Question',
              cache_control: { type: 'ephemeral' as const, ttl: '1h' as const },
            },
          ],
        },
      ],
    };
    const message = await anthropic.messages.create(params);
    expect(message.usage).toMatchObject({
      input_tokens: 50,
      cache_creation_input_tokens: 1000,
      cache_read_input_tokens: 2000,
      output_tokens: 10,
    });
    expect(claude.requests[0]?.body).toMatchObject({
      model: 'claude-sonnet-5-5',
      system: [
        { type: 'text', text: 'Rules.\nA long manual.', cache_control: { type: 'ephemeral' } },
      ],
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Question', cache_control: { type: 'ephemeral', ttl: '1h' } },
          ],
        },
      ],
    });
    // 50 × 2 + 1000 × 2.5 + 2000 × 0.2 + 10 × 10 micro-USDC.
    const rows = await requestRows(server, p.projectId);
    expect(rows.at(-1)).toMatchObject({ status: 'succeeded', inputTokens: 3050, cost: '3100' });

    claude.script({
      kind: 'reply',
      chunks: ['Again.'],
      inputTokens: 5,
      cacheReadTokens: 3000,
      outputTokens: 2,
    });
    const streamed = await anthropic.messages.stream(params).finalMessage();
    expect(streamed.usage).toMatchObject({ input_tokens: 5, cache_read_input_tokens: 3000 });
  });

  it('counts tokens through an Anthropic upstream, and refuses to for an OpenAI one', async () => {
    const prompt = {
      model: 'cached-claude',
      system: 'Rules.',
      messages: [{ role: 'user' as const, content: 'Count me, please.' }],
    };
    const counted = await anthropic.messages.countTokens(prompt);
    expect(claude.requests).toHaveLength(1);
    expect(claude.requests[0]).toMatchObject({
      path: '/v1/messages/count_tokens',
      apiKey: claude.apiKey,
      model: 'claude-sonnet-5-5',
    });
    // The upstream's count is what its reply to the same prompt reports.
    const message = await anthropic.messages.create({ ...prompt, max_tokens: 20 });
    expect(counted.input_tokens).toBe(message.usage.input_tokens);

    const refused = anthropic.messages.countTokens({ ...prompt, model: 'house' });
    await expect(refused).rejects.toBeInstanceOf(Anthropic.BadRequestError);
    await expect(refused).rejects.toThrow(
      /house is served by an openai upstream, which cannot count tokens/,
    );
    expect(upstream.requests).toHaveLength(0);
  });
});
