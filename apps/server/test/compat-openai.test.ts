import Anthropic from '@anthropic-ai/sdk';
import { sql } from '@smartspace/api/testing';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  budgetReserved,
  type CompatServer,
  eventually,
  type KeyedProject,
  requestRows,
  startCompatServer,
} from './compat-harness';

function sdk(server: CompatServer, secret: string) {
  return new OpenAI({ apiKey: secret, baseURL: `${server.origin}/v1`, maxRetries: 0 });
}

const TOOLS: OpenAI.Chat.Completions.ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather for a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  },
];

describe('POST /v1/chat/completions with the OpenAI SDK', () => {
  let server: CompatServer;
  let main: KeyedProject;
  let client: OpenAI;

  beforeAll(async () => {
    server = await startCompatServer();
    main = await server.project('OpenAI gateway');
    client = sdk(server, main.secret);
  }, 30_000);
  afterAll(() => server?.close());

  it('answers a completion with usage, billed to the key', async () => {
    const completion = await client.chat.completions.create({
      model: 'mock-echo',
      max_completion_tokens: 100,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'hello there' },
      ],
    });
    expect(completion).toMatchObject({
      object: 'chat.completion',
      model: 'mock-echo',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: 'Echo: hello there' },
          finish_reason: 'stop',
        },
      ],
      usage: { completion_tokens: 5 },
    });
    expect(completion.id).toMatch(/^chatcmpl-/);
    expect(completion.usage?.total_tokens).toBe(
      (completion.usage?.prompt_tokens ?? 0) + (completion.usage?.completion_tokens ?? 0),
    );
    const rows = await requestRows(server, main.projectId);
    expect(rows.at(-1)).toMatchObject({
      status: 'succeeded',
      source: 'api',
      keyId: main.keyId,
      cost: '5000',
      reserved: '0',
    });
  });

  it('streams chunks ending in [DONE], with usage when asked', async () => {
    const stream = await client.chat.completions.create({
      model: 'mock-echo',
      max_tokens: 100,
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'stream these words' }],
    });
    let text = '';
    const finishes: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      for (const choice of chunk.choices) {
        text += choice.delta.content ?? '';
        finishes.push(choice.finish_reason);
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe('Echo: stream these words');
    expect(finishes.at(-1)).toBe('stop');
    expect(finishes.filter((f) => f !== null)).toHaveLength(1);
    expect(usage?.completion_tokens).toBe(Math.ceil(text.length / 4));

    const raw = await fetch(`${server.origin}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${main.secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'mock-echo',
        stream: true,
        messages: [{ role: 'user', content: 'hi' }],
      }),
    });
    const body = await raw.text();
    expect(body.startsWith('data: {')).toBe(true);
    expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true);
    expect(body).not.toContain('"usage"');
  });

  it('assembles a stream with the SDK helper, including a tool call', async () => {
    const runner = client.chat.completions.stream({
      model: 'mock-echo',
      max_tokens: 200,
      tools: TOOLS,
      messages: [{ role: 'user', content: 'Weather? [[tool:get_weather {"city":"Oslo"}]]' }],
    });
    const final = await runner.finalChatCompletion();
    expect(final.choices[0]?.finish_reason).toBe('tool_calls');
    expect(final.choices[0]?.message.tool_calls).toEqual([
      {
        id: 'toolu_mock_1_1',
        type: 'function',
        function: { name: 'get_weather', arguments: '{"city":"Oslo"}' },
      },
    ]);
  });

  it('round-trips function calling with tool messages', async () => {
    const first = await client.chat.completions.create({
      model: 'mock-echo',
      max_tokens: 200,
      tools: TOOLS,
      messages: [
        {
          role: 'user',
          content:
            'Both? [[tool:get_weather {"city":"Oslo"}]] [[tool:get_weather {"city":"Rome"}]]',
        },
      ],
    });
    const message = first.choices[0]?.message;
    expect(first.choices[0]?.finish_reason).toBe('tool_calls');
    expect(message?.content).toBeNull();
    expect(message?.tool_calls?.map((c) => c.id)).toEqual(['toolu_mock_1_1', 'toolu_mock_1_2']);
    if (!message) throw new Error('no message');

    const second = await client.chat.completions.create({
      model: 'mock-echo',
      max_tokens: 200,
      tools: TOOLS,
      messages: [
        { role: 'user', content: 'Both? [[tool:get_weather {"city":"Oslo"}]]' },
        message,
        { role: 'tool', tool_call_id: 'toolu_mock_1_1', content: '3°C' },
        { role: 'tool', tool_call_id: 'toolu_mock_1_2', content: '21°C' },
      ],
    });
    expect(second.choices[0]?.message.content).toBe('Result: 3°C\nResult: 21°C');
    expect(second.choices[0]?.finish_reason).toBe('stop');
  });

  it('honours stop and reports max_tokens as length', async () => {
    const stopped = await client.chat.completions.create({
      model: 'mock-echo',
      stop: ['ENDS'],
      messages: [{ role: 'user', content: 'alpha ENDS beta' }],
    });
    expect(stopped.choices[0]?.message.content).toBe('Echo: alpha ');
    expect(stopped.choices[0]?.finish_reason).toBe('stop');

    const cut = await client.chat.completions.create({
      model: 'mock-echo',
      max_tokens: 2,
      messages: [{ role: 'user', content: 'a long enough sentence to be cut' }],
    });
    expect(cut.choices[0]?.finish_reason).toBe('length');
    expect(cut.choices[0]?.message.content).toBe('Echo: a ');
  });

  it('refuses a bad body with 400 BadRequestError and records nothing', async () => {
    const before = (await requestRows(server, main.projectId)).length;
    const bad = client.chat.completions.create({
      model: 'mock-echo',
      messages: [{ role: 'wizard', content: 'x' } as never],
    });
    await expect(bad).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(bad).rejects.toMatchObject({ status: 400, type: 'invalid_request_error' });
    const badArgs = client.chat.completions.create({
      model: 'mock-echo',
      messages: [
        { role: 'user', content: 'x' },
        {
          role: 'assistant',
          tool_calls: [{ id: 't1', type: 'function', function: { name: 'f', arguments: '{oops' } }],
        },
      ],
    });
    await expect(badArgs).rejects.toThrow(/not valid JSON/);
    expect(await requestRows(server, main.projectId)).toHaveLength(before);
  });

  it('maps credentials, roles, budgets, rate limits and unknown models to OpenAI errors', async () => {
    const unknown = sdk(server, 'ssk_nope').chat.completions.create({
      model: 'mock-echo',
      messages: [{ role: 'user', content: 'x' }],
    });
    await expect(unknown).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    await expect(unknown).rejects.toMatchObject({ code: 'auth.unauthenticated' });

    const doomed = await server.project('OpenAI revoked');
    await server.owner.apiKeys.revoke.mutate({ keyId: doomed.keyId });
    const revoked = sdk(server, doomed.secret).chat.completions.create({
      model: 'mock-echo',
      messages: [{ role: 'user', content: 'x' }],
    });
    await expect(revoked).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    await expect(revoked).rejects.toThrow(/auth\.key_revoked/);

    const viewer = await server.project('OpenAI viewer', 'viewer');
    await expect(
      sdk(server, viewer.secret).chat.completions.create({
        model: 'mock-echo',
        messages: [{ role: 'user', content: 'x' }],
      }),
    ).rejects.toBeInstanceOf(OpenAI.PermissionDeniedError);

    await expect(
      client.chat.completions.create({
        model: 'gpt-nothing',
        messages: [{ role: 'user', content: 'x' }],
      }),
    ).rejects.toBeInstanceOf(OpenAI.NotFoundError);

    const broke = await server.project('OpenAI budget');
    await server.owner.budgets.setLimit.mutate({
      projectId: broke.projectId,
      scope: 'key',
      scopeId: broke.keyId,
      period: 'day',
      amount: '0.001',
    });
    const overBudget = sdk(server, broke.secret).chat.completions.create({
      model: 'mock-echo',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'x' }],
    });
    await expect(overBudget).rejects.toBeInstanceOf(OpenAI.PermissionDeniedError);
    await expect(overBudget).rejects.toMatchObject({ code: 'budget.exceeded' });

    const limited = await server.project('OpenAI limited');
    await server.owner.policies.update.mutate({
      projectId: limited.projectId,
      requestsPerMinute: 1,
    });
    const ask = { model: 'mock-echo', messages: [{ role: 'user' as const, content: 'x' }] };
    await sdk(server, limited.secret).chat.completions.create(ask);
    const second = sdk(server, limited.secret).chat.completions.create(ask);
    await expect(second).rejects.toBeInstanceOf(OpenAI.RateLimitError);
    await expect(second).rejects.toMatchObject({ code: 'rate_limited' });
  });

  it('sends a mid-stream model failure as an error chunk the SDK raises', async () => {
    const stream = await client.chat.completions.create({
      model: 'mock-echo',
      stream: true,
      messages: [{ role: 'user', content: 'one two three four [[fail]]' }],
    });
    const read = async () => {
      for await (const _ of stream) {
        // drain
      }
    };
    await expect(read()).rejects.toThrow(/model\.stream_interrupted/);
  });

  it('cuts the model call when the client aborts mid-stream; billed, nothing reserved', async () => {
    const p = await server.project('OpenAI disconnect');
    await server.owner.budgets.setLimit.mutate({
      projectId: p.projectId,
      scope: 'project',
      period: 'month',
      amount: '100',
    });
    const words = Array.from({ length: 200 }, (_, i) => `w${i}`).join(' ');
    const controller = new AbortController();
    const stream = await sdk(server, p.secret).chat.completions.create(
      {
        model: 'mock-echo',
        max_tokens: 2000,
        stream: true,
        messages: [{ role: 'user', content: words }],
      },
      { signal: controller.signal },
    );
    let received = '';
    const read = async () => {
      for await (const chunk of stream) {
        received += chunk.choices[0]?.delta.content ?? '';
        if (received.length > 20) controller.abort();
      }
    };
    // The SDK ends the iteration quietly when its own signal aborts it.
    await read().catch(() => {});
    expect(controller.signal.aborted).toBe(true);
    expect(received.length).toBeLessThan(words.length);
    const rows = await eventually(
      () => requestRows(server, p.projectId),
      (r) => r[0]?.status === 'cancelled',
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: 'cancelled', keyId: p.keyId, reserved: '0' });
    expect(rows[0]?.outputTokens).toBeGreaterThan(0);
    expect(rows[0]?.outputTokens).toBeLessThan(50);
    expect(await budgetReserved(server, p.projectId)).toBe('0');
  });
});

describe('GET /v1/models', () => {
  let server: CompatServer;
  beforeAll(async () => {
    server = await startCompatServer(0);
  }, 30_000);
  afterAll(() => server?.close());

  it("lists the project's allowed models, in each SDK's shape", async () => {
    const p = await server.project('Models', 'viewer');
    const openaiIds: string[] = [];
    for await (const m of sdk(server, p.secret).models.list()) {
      expect(m).toMatchObject({ object: 'model', created: 0 });
      openaiIds.push(m.id);
    }
    expect(openaiIds).toContain('mock-echo');

    const anthropic = new Anthropic({ apiKey: p.secret, baseURL: server.origin, maxRetries: 0 });
    const page = await anthropic.models.list();
    expect(page.data.map((m) => m.id)).toEqual(openaiIds);
    expect(page.data[0]).toMatchObject({ type: 'model', display_name: page.data[0]?.id });

    await server.owner.policies.update.mutate({
      projectId: p.projectId,
      allowedModels: ['mock-echo'],
    });
    const narrowed = await anthropic.models.list();
    expect(narrowed.data.map((m) => m.id)).toEqual(['mock-echo']);

    const noKey = await fetch(`${server.origin}/v1/models`);
    expect(noKey.status).toBe(401);
    expect(await noKey.json()).toMatchObject({
      error: { type: 'invalid_request_error', code: 'auth.unauthenticated' },
    });
  });
});

describe('the gateway, consumed by breaking out of its iterator', () => {
  let server: CompatServer;
  let p: KeyedProject;
  beforeAll(async () => {
    server = await startCompatServer(10);
    p = await server.project('Iterator');
    await server.owner.budgets.setLimit.mutate({
      projectId: p.projectId,
      scope: 'project',
      period: 'month',
      amount: '100',
    });
  }, 30_000);
  afterAll(() => server?.close());

  async function callAndStop(content: string, stopAfter: 'done' | 'first') {
    const [row] = await server.rows<{ user_id: string }>(
      sql`select created_by as user_id from api_keys where id = ${p.keyId}`,
    );
    const events = server.api.deps.gateway.stream({
      projectId: p.projectId,
      userId: row?.user_id ?? null,
      keyId: p.keyId,
      source: 'api',
      model: 'mock-echo',
      messages: [{ role: 'user', content }],
      maxOutputTokens: 1000,
    });
    for await (const ev of events) {
      if (stopAfter === 'first' || ev.type === 'done') break;
    }
  }

  it('settles a consumer that stops after done as succeeded, and one that stops early as cancelled', async () => {
    await callAndStop('short', 'done');
    await callAndStop(Array.from({ length: 100 }, (_, i) => `w${i}`).join(' '), 'first');
    const rows = await requestRows(server, p.projectId);
    expect(rows.map((r) => [r.status, r.reserved])).toEqual([
      ['succeeded', '0'],
      ['cancelled', '0'],
    ]);
    expect(rows[1]?.outputTokens).toBeGreaterThan(0);
    expect(rows[1]?.outputTokens).toBeLessThan(10);
    expect(await budgetReserved(server, p.projectId)).toBe('0');
  });
});
