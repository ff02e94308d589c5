import { createTestDatabase } from '@smartspace/api/testing';
import { createClient } from '@smartspace/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './harness';
import { multiInstanceEnabled, PASSWORD, startInstance } from './instances';

/**
 * Subscriptions are served over WebSocket only. Over HTTP (tRPC's SSE
 * transport) a stream escaped the socket controls (logout, token expiry, per-user caps) and
 * held graceful shutdown open, so every HTTP form of a subscription call is refused at once.
 */
const refusal = {
  code: 'METHOD_NOT_SUPPORTED',
  appCode: 'request.method_not_supported',
  httpStatus: 405,
  path: 'chat.onEvent',
};

async function signedInConversation(origin: string, email: string) {
  const client = createClient({ url: `${origin}/trpc` });
  const session = await client.auth.register.mutate({ email, password: PASSWORD, name: 'SSE' });
  const project = await client.projects.create.mutate({ name: 'SSE' });
  const conversation = await client.chat.conversations.create.mutate({ projectId: project.id });
  return { token: session.accessToken, conversationId: conversation.id };
}

/** A GET that must be answered within 5 s: a stream that stays open fails it. */
async function get(url: string, headers: Record<string, string>) {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(5000) });
  return { status: res.status, type: res.headers.get('content-type'), body: await res.json() };
}

describe('subscriptions over HTTP', () => {
  let server: TestServer;
  let token: string;
  let input: string;
  beforeAll(async () => {
    server = await startTestServer();
    const c = await signedInConversation(server.origin, `sse-${Date.now()}@example.com`);
    token = c.token;
    input = encodeURIComponent(JSON.stringify({ conversationId: c.conversationId }));
  });
  afterAll(() => server?.close());

  it('GET /trpc/chat.onEvent with a valid token answers an error at once, never a stream', async () => {
    for (const accept of ['text/event-stream', 'application/json']) {
      const res = await get(`${server.origin}/trpc/chat.onEvent?input=${input}`, {
        authorization: `Bearer ${token}`,
        accept,
      });
      expect(res.status).toBe(405);
      expect(res.type).toMatch(/^application\/json/);
      expect(res.body.error.data).toMatchObject(refusal);
      expect(res.body.error.message).toMatch(/WebSocket.*\/trpc/);
    }
  });

  it('refused before its input is read: no token, malformed input, same answer', async () => {
    const res = await get(`${server.origin}/trpc/chat.onEvent?input=%7Bnot-json`, {});
    expect(res.status).toBe(405);
    expect(res.body.error.data).toMatchObject(refusal);
  });

  it('inside a batch: that call is refused, the others answer', async () => {
    const batchInput = encodeURIComponent(
      JSON.stringify({ 1: JSON.parse(decodeURIComponent(input)) }),
    );
    const res = await get(
      `${server.origin}/trpc/users.me,chat.onEvent?batch=1&input=${batchInput}`,
      {
        authorization: `Bearer ${token}`,
      },
    );
    expect(res.body[0].result.data.id).toEqual(expect.any(String));
    expect(res.body[1].error.data).toMatchObject(refusal);
  });

  it('through the streaming batch handler too (trpc-accept: application/jsonl)', async () => {
    const batchInput = encodeURIComponent(
      JSON.stringify({ 0: JSON.parse(decodeURIComponent(input)) }),
    );
    const res = await get(`${server.origin}/trpc/chat.onEvent?batch=1&input=${batchInput}`, {
      authorization: `Bearer ${token}`,
      'trpc-accept': 'application/jsonl',
    });
    expect(res.status).toBe(405);
    const { path: _, ...rest } = refusal;
    expect(res.body.error.data).toMatchObject(rest);
  });

  it('POST to a subscription is refused the same way', async () => {
    const res = await fetch(`${server.origin}/trpc/chat.onEvent`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: decodeURIComponent(input),
      signal: AbortSignal.timeout(5000),
    });
    expect(res.status).toBe(405);
    expect((await res.json()).error.data).toMatchObject(refusal);
  });

  it('an attempt left unread does not hold the server open on close', async () => {
    const own = await startTestServer();
    const c = await signedInConversation(own.origin, `sse-close-${Date.now()}@example.com`);
    const body = encodeURIComponent(JSON.stringify({ conversationId: c.conversationId }));
    const res = await fetch(`${own.origin}/trpc/chat.onEvent?input=${body}`, {
      headers: { authorization: `Bearer ${c.token}`, accept: 'text/event-stream' },
    });
    expect(res.status).toBe(405);
    const started = Date.now();
    await own.close();
    // An SSE stream held it open until the 30 s request timeout; a loaded machine needs seconds.
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe.runIf(multiInstanceEnabled)('SIGTERM after a subscription attempt over HTTP', () => {
  it('exits cleanly and promptly', async () => {
    const db = await createTestDatabase();
    if (!db.url) throw new Error('needs PostgreSQL');
    const instance = await startInstance(db.url);
    try {
      const c = await signedInConversation(instance.origin, 'sse-sigterm@example.com');
      const input = encodeURIComponent(JSON.stringify({ conversationId: c.conversationId }));
      // The attempt is left unread, as a client that opened a stream would leave it.
      const res = await fetch(`${instance.origin}/trpc/chat.onEvent?input=${input}`, {
        headers: { authorization: `Bearer ${c.token}`, accept: 'text/event-stream' },
      });
      expect(res.status).toBe(405);
      const started = Date.now();
      instance.child.kill('SIGTERM');
      expect(await instance.exited).toBe(0);
      // The socket drain takes 1 s; the forced exit would come after 15 s.
      expect(Date.now() - started).toBeLessThan(8000);
    } finally {
      if (instance.child.exitCode === null) instance.child.kill('SIGKILL');
      await instance.exited;
      await db.close();
    }
  }, 60_000);
});
