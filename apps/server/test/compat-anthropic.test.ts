import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  budgetReserved,
  type CompatServer,
  eventually,
  type KeyedProject,
  requestRows,
  startCompatServer,
} from './compat-harness';

/** The Anthropic SDK, pointed at SmartSpace with a project key, against mock-echo. */
function sdk(server: CompatServer, secret: string) {
  return new Anthropic({ apiKey: secret, baseURL: server.origin, maxRetries: 0 });
}

const TOOLS = [
  {
    name: 'get_weather',
    description: 'Current weather for a city',
    input_schema: {
      type: 'object' as const,
      properties: { city: { type: 'string' } },
      required: ['city'],
    },
  },
];

describe('POST /v1/messages with the Anthropic SDK', () => {
  let server: CompatServer;
  let main: KeyedProject;
  let client: Anthropic;

  beforeAll(async () => {
    server = await startCompatServer();
    main = await server.project('Gateway');
    client = sdk(server, main.secret);
  }, 30_000);
  afterAll(() => server?.close());

  it('answers a message, billed to the key, nothing left reserved', async () => {
    const message = await client.messages.create({
      model: 'mock-echo',
      max_tokens: 100,
      system: 'Be brief.',
      messages: [{ role: 'user', content: 'hello there' }],
    });
    expect(message).toMatchObject({
      type: 'message',
      role: 'assistant',
      model: 'mock-echo',
      content: [{ type: 'text', text: 'Echo: hello there' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: { output_tokens: 5 },
    });
    expect(message.id).toMatch(/^msg_/);
    expect(message.usage.input_tokens).toBeGreaterThan(0);

    const rows = await requestRows(server, main.projectId);
    expect(rows.at(-1)).toMatchObject({
      status: 'succeeded',
      source: 'api',
      keyId: main.keyId,
      outputTokens: 5,
      cost: '5000',
      reserved: '0',
    });
    expect(rows.at(-1)?.userId).toBeTruthy();
  });

  it('streams Anthropic events in order, and the SDK assembles the same message', async () => {
    const stream = client.messages.stream({
      model: 'mock-echo',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'stream these words please' }],
    });
    const types: string[] = [];
    stream.on('streamEvent', (event) => types.push(event.type));
    let text = '';
    stream.on('text', (delta) => {
      text += delta;
    });
    const final = await stream.finalMessage();
    expect(text).toBe('Echo: stream these words please');
    expect(final.content).toEqual([{ type: 'text', text: 'Echo: stream these words please' }]);
    expect(final.stop_reason).toBe('end_turn');
    expect(final.usage.output_tokens).toBe(Math.ceil(text.length / 4));
    expect(final.usage.input_tokens).toBeGreaterThan(0);
    expect(types.slice(0, 3)).toEqual([
      'message_start',
      'content_block_start',
      'content_block_delta',
    ]);
    expect(types.filter((t) => t === 'content_block_delta').length).toBeGreaterThan(1);
    expect(types.slice(-3)).toEqual(['content_block_stop', 'message_delta', 'message_stop']);
  });

  it('sends raw SSE with event: and data: lines', async () => {
    const res = await fetch(`${server.origin}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': main.secret, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'mock-echo',
        max_tokens: 50,
        stream: true,
        messages: [{ role: 'user', content: 'hi' }],
      }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const body = await res.text();
    const events = [...body.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
    // The SDK hides pings; on the wire one follows the first content_block_start.
    expect(events).toEqual([
      'message_start',
      'content_block_start',
      'ping',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(body.startsWith('event: message_start\ndata: {')).toBe(true);
    expect(body.trimEnd().endsWith('event: message_stop\ndata: {"type":"message_stop"}')).toBe(
      true,
    );
  });

  it('round-trips tool use, streamed and not', async () => {
    const ask = {
      model: 'mock-echo',
      max_tokens: 200,
      tools: TOOLS,
      messages: [
        { role: 'user' as const, content: 'Weather? [[tool:get_weather {"city":"Paris"}]]' },
      ],
    };
    const streamed = await client.messages.stream(ask).finalMessage();
    expect(streamed.stop_reason).toBe('tool_use');
    expect(streamed.content).toEqual([
      { type: 'tool_use', id: 'toolu_mock_1_1', name: 'get_weather', input: { city: 'Paris' } },
    ]);
    const plain = await client.messages.create(ask);
    expect(plain.content).toEqual(streamed.content);

    const answer = await client.messages.create({
      ...ask,
      messages: [
        ...ask.messages,
        { role: 'assistant', content: plain.content },
        {
          role: 'user',
          content: [{ type: 'tool_result', tool_use_id: 'toolu_mock_1_1', content: '18°C, sunny' }],
        },
      ],
    });
    expect(answer.stop_reason).toBe('end_turn');
    expect(answer.content).toEqual([{ type: 'text', text: 'Result: 18°C, sunny' }]);
  });

  it('stops at a stop sequence and says which', async () => {
    const params = {
      model: 'mock-echo',
      max_tokens: 100,
      stop_sequences: ['END'],
      messages: [{ role: 'user' as const, content: 'one two ENDthree four' }],
    };
    const message = await client.messages.create(params);
    expect(message.content).toEqual([{ type: 'text', text: 'Echo: one two ' }]);
    expect(message.stop_reason).toBe('stop_sequence');
    expect(message.stop_sequence).toBe('END');
    const streamed = await client.messages.stream(params).finalMessage();
    expect(streamed.content).toEqual(message.content);
    expect(streamed.stop_sequence).toBe('END');
    const rows = await requestRows(server, main.projectId);
    // The model stopped itself: a complete call, not a cancelled one.
    expect(rows.slice(-2)).toEqual([
      expect.objectContaining({ status: 'succeeded', reserved: '0', keyId: main.keyId }),
      expect.objectContaining({ status: 'succeeded', reserved: '0', keyId: main.keyId }),
    ]);
  });

  it('refuses a bad body with 400 before any model call: BadRequestError, no usage row', async () => {
    const before = (await requestRows(server, main.projectId)).length;
    const bad = client.messages.create({
      model: 'mock-echo',
      max_tokens: 0,
      messages: [{ role: 'user', content: 'hi' }],
    });
    await expect(bad).rejects.toBeInstanceOf(Anthropic.BadRequestError);
    await expect(bad).rejects.toMatchObject({
      status: 400,
      error: { type: 'error', error: { type: 'invalid_request_error' } },
    });
    await expect(bad).rejects.toThrow(/max_tokens/);

    const image = client.messages.create({
      model: 'mock-echo',
      max_tokens: 10,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AA==' } },
          ],
        },
      ],
    });
    await expect(image).rejects.toBeInstanceOf(Anthropic.BadRequestError);

    const notJson = await fetch(`${server.origin}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': main.secret, 'content-type': 'application/json' },
      body: '{"model":',
    });
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toMatchObject({
      type: 'error',
      error: { type: 'invalid_request_error' },
    });

    const huge = await fetch(`${server.origin}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': main.secret, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'mock-echo',
        max_tokens: 10,
        messages: [{ role: 'user', content: 'x'.repeat(1024 * 1024) }],
      }),
    });
    expect(huge.status).toBe(413);
    expect(await huge.json()).toMatchObject({ error: { type: 'request_too_large' } });

    expect(await requestRows(server, main.projectId)).toHaveLength(before);
  });

  it('answers an unknown model with 404 not_found_error', async () => {
    const call = client.messages.create({
      model: 'no-such-model',
      max_tokens: 10,
      messages: [{ role: 'user', content: 'hi' }],
    });
    await expect(call).rejects.toBeInstanceOf(Anthropic.NotFoundError);
    await expect(call).rejects.toThrow(/model\.unavailable/);
  });

  it('refuses missing, unknown, revoked and session credentials with 401, viewers with 403', async () => {
    const unknown = sdk(server, 'ssk_not-a-real-key');
    await expect(
      unknown.messages.create({
        model: 'mock-echo',
        max_tokens: 5,
        messages: [{ role: 'user', content: 'x' }],
      }),
    ).rejects.toBeInstanceOf(Anthropic.AuthenticationError);

    const none = await fetch(`${server.origin}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({
      type: 'error',
      error: {
        type: 'authentication_error',
        message: expect.stringContaining('auth.unauthenticated'),
      },
    });

    const jwt = await fetch(`${server.origin}/v1/messages`, {
      method: 'POST',
      headers: {
        authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.x',
        'content-type': 'application/json',
      },
      body: '{}',
    });
    expect(jwt.status).toBe(401);

    const doomed = await server.project('Revoked');
    const revokedClient = sdk(server, doomed.secret);
    await revokedClient.messages.create({
      model: 'mock-echo',
      max_tokens: 5,
      messages: [{ role: 'user', content: 'ok' }],
    });
    await server.owner.apiKeys.revoke.mutate({ keyId: doomed.keyId });
    const revoked = revokedClient.messages.create({
      model: 'mock-echo',
      max_tokens: 5,
      messages: [{ role: 'user', content: 'x' }],
    });
    await expect(revoked).rejects.toBeInstanceOf(Anthropic.AuthenticationError);
    await expect(revoked).rejects.toThrow(/auth\.key_revoked/);

    const viewer = await server.project('Read only', 'viewer');
    const denied = sdk(server, viewer.secret).messages.create({
      model: 'mock-echo',
      max_tokens: 5,
      messages: [{ role: 'user', content: 'x' }],
    });
    await expect(denied).rejects.toBeInstanceOf(Anthropic.PermissionDeniedError);
    await expect(denied).rejects.toThrow(/auth\.forbidden/);
    expect(await requestRows(server, viewer.projectId)).toHaveLength(0);
  });

  it('maps a budget refusal to 403 PermissionDeniedError with budget.exceeded', async () => {
    const p = await server.project('Tight budget');
    await server.owner.budgets.setLimit.mutate({
      projectId: p.projectId,
      scope: 'project',
      period: 'month',
      amount: '0.001',
    });
    const call = sdk(server, p.secret).messages.create({
      model: 'mock-echo',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'hi' }],
    });
    await expect(call).rejects.toBeInstanceOf(Anthropic.PermissionDeniedError);
    await expect(call).rejects.toThrow(/budget\.exceeded/);
    const streamed = sdk(server, p.secret).messages.stream({
      model: 'mock-echo',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'hi' }],
    });
    await expect(streamed.finalMessage()).rejects.toBeInstanceOf(Anthropic.PermissionDeniedError);
    const rows = await requestRows(server, p.projectId);
    expect(rows.map((r) => [r.status, r.errorCode, r.keyId])).toEqual([
      ['denied', 'budget.exceeded', p.keyId],
      ['denied', 'budget.exceeded', p.keyId],
    ]);
    expect(await budgetReserved(server, p.projectId)).toBe('0');
  });

  it('maps a policy refusal to 403 and the rate limit to 429 RateLimitError with retry-after', async () => {
    const p = await server.project('Limited');
    await server.owner.policies.update.mutate({ projectId: p.projectId, requestsPerMinute: 1 });
    const limited = sdk(server, p.secret);
    const ask = {
      model: 'mock-echo',
      max_tokens: 10,
      messages: [{ role: 'user' as const, content: 'a' }],
    };
    await limited.messages.create(ask);
    const second = limited.messages.create(ask);
    await expect(second).rejects.toBeInstanceOf(Anthropic.RateLimitError);
    await expect(second).rejects.toThrow(/rate_limited/);
    const err = (await second.catch((e: unknown) => e)) as InstanceType<
      typeof Anthropic.RateLimitError
    >;
    expect(Number(err.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);

    await server.owner.policies.update.mutate({
      projectId: p.projectId,
      requestsPerMinute: null,
      allowedModels: ['some-other-model'],
    });
    const notAllowed = limited.messages.create(ask);
    await expect(notAllowed).rejects.toBeInstanceOf(Anthropic.PermissionDeniedError);
    await expect(notAllowed).rejects.toThrow(/policy\.model_not_allowed/);
  });

  it('counts tokens with messages.countTokens: what the call then reports, free, no usage row', async () => {
    const p = await server.project('Counting');
    const counter = sdk(server, p.secret);
    const prompt = {
      model: 'mock-echo',
      system: 'Answer in French.',
      messages: [{ role: 'user' as const, content: 'How many tokens is this prompt?' }],
      tools: TOOLS,
    };
    const counted = await counter.messages.countTokens(prompt);
    expect(counted.input_tokens).toBeGreaterThan(10);
    expect(await requestRows(server, p.projectId)).toEqual([]);
    const message = await counter.messages.create({ ...prompt, max_tokens: 50 });
    expect(message.usage.input_tokens).toBe(counted.input_tokens);

    await expect(
      counter.messages.countTokens({ ...prompt, model: 'no-such-model' }),
    ).rejects.toBeInstanceOf(Anthropic.NotFoundError);
    const bad = counter.messages.countTokens({ model: 'mock-echo', messages: [] });
    await expect(bad).rejects.toBeInstanceOf(Anthropic.BadRequestError);
    await expect(
      sdk(server, 'ssk_not_a_real_key').messages.countTokens(prompt),
    ).rejects.toBeInstanceOf(Anthropic.AuthenticationError);

    // The policy applies: allowed models, and its rate, counted apart from model calls.
    await server.owner.policies.update.mutate({ projectId: p.projectId, requestsPerMinute: 1 });
    await counter.messages.countTokens(prompt);
    const limited = counter.messages.countTokens(prompt);
    await expect(limited).rejects.toBeInstanceOf(Anthropic.RateLimitError);
    await counter.messages.create({ ...prompt, max_tokens: 5 });
    await server.owner.policies.update.mutate({
      projectId: p.projectId,
      requestsPerMinute: null,
      allowedModels: ['some-other-model'],
    });
    await expect(counter.messages.countTokens(prompt)).rejects.toThrow(/policy\.model_not_allowed/);
    const rows = await requestRows(server, p.projectId);
    expect(rows.map((r) => r.status)).toEqual(['succeeded', 'succeeded']);
  });

  it('reports a model failure mid-stream as an SSE error event', async () => {
    const stream = client.messages.stream({
      model: 'mock-echo',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'one two three four [[fail]]' }],
    });
    let text = '';
    stream.on('text', (t) => {
      text += t;
    });
    await expect(stream.finalMessage()).rejects.toThrow(/model\.stream_interrupted/);
    expect(text.startsWith('Echo:')).toBe(true);
    const rows = await requestRows(server, main.projectId);
    expect(rows.at(-1)).toMatchObject({ status: 'failed', reserved: '0' });
  });

  it('stops the model when the client disconnects mid-stream, bills what was sent, holds nothing', async () => {
    const p = await server.project('Disconnect');
    await server.owner.budgets.setLimit.mutate({
      projectId: p.projectId,
      scope: 'project',
      period: 'month',
      amount: '100',
    });
    const words = Array.from({ length: 200 }, (_, i) => `w${i}`).join(' ');
    const stream = sdk(server, p.secret).messages.stream({
      model: 'mock-echo',
      max_tokens: 2000,
      messages: [{ role: 'user', content: words }],
    });
    let received = '';
    await new Promise<void>((resolve) => {
      stream.on('text', (t) => {
        received += t;
        if (received.length > 20) {
          stream.abort();
          resolve();
        }
      });
    });
    await expect(stream.done()).rejects.toThrow();

    const rows = await eventually(
      () => requestRows(server, p.projectId),
      (r) => r[0]?.status === 'cancelled',
    );
    expect(rows).toHaveLength(1);
    const [row] = rows;
    expect(row).toMatchObject({ status: 'cancelled', keyId: p.keyId, reserved: '0' });
    // Charged for some output, far less than the 200-word reply it was cut from.
    expect(row?.outputTokens).toBeGreaterThan(0);
    expect(row?.outputTokens).toBeLessThan(50);
    expect(BigInt(row?.cost ?? '0')).toBe(BigInt(row?.outputTokens ?? 0) * 1000n);
    expect(await budgetReserved(server, p.projectId)).toBe('0');
    const budget = await server.owner.budgets.get.query({ projectId: p.projectId });
    expect(budget.limits[0]).toMatchObject({ reserved: '0.000000' });
  });
});

describe('POST /v1/messages on prepaid billing', () => {
  let server: CompatServer;
  beforeAll(async () => {
    server = await startCompatServer(0, { BILLING_MODE: 'prepaid' });
  }, 30_000);
  afterAll(() => server?.close());

  it('refuses a paid model call without balance: 403 with balance.insufficient', async () => {
    const p = await server.project('Unfunded');
    const call = sdk(server, p.secret).messages.create({
      model: 'mock-echo',
      max_tokens: 10,
      messages: [{ role: 'user', content: 'hi' }],
    });
    await expect(call).rejects.toBeInstanceOf(Anthropic.PermissionDeniedError);
    await expect(call).rejects.toThrow(/balance\.insufficient/);
    const rows = await requestRows(server, p.projectId);
    expect(rows.map((r) => [r.status, r.errorCode, r.keyId])).toEqual([
      ['denied', 'balance.insufficient', p.keyId],
    ]);
  });
});
