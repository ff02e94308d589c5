import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, TEST_JWT_SECRET } from '@smartspace/api/testing';
import { closeClient, createClient } from '@smartspace/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketImpl } from './sockets';

/**
 * Two real server processes on one PostgreSQL: events published by one reach subscribers
 * connected to the other (LISTEN/NOTIFY). Needs a PostgreSQL server (TEST_DATABASE_URL);
 * PGlite is one process by design.
 */
const enabled = Boolean(process.env.TEST_DATABASE_URL);

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

interface Instance {
  origin: string;
  child: ChildProcess;
  exited: Promise<number | null>;
}

async function startInstance(databaseUrl: string): Promise<Instance> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: join(import.meta.dirname, '..'),
    env: {
      ...process.env,
      NODE_ENV: 'test',
      PORT: String(port),
      DATABASE_URL: databaseUrl,
      JWT_SECRET: TEST_JWT_SECRET,
      DATA_DIR: mkdtempSync(join(tmpdir(), 'smartspace-instance-')),
      LOG_LEVEL: 'warn',
      RATE_LIMIT_PER_MINUTE: '0',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await fetch(`${origin}/ready`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('instance did not start');
    await new Promise((r) => setTimeout(r, 200));
  }
  return { origin, child, exited };
}

describe.runIf(enabled)('two server processes on one PostgreSQL', () => {
  let a: Instance;
  let b: Instance;
  let closeDb: () => Promise<void>;
  beforeAll(async () => {
    const db = await createTestDatabase();
    if (!db.url) throw new Error('needs PostgreSQL');
    closeDb = () => db.close();
    [a, b] = await Promise.all([startInstance(db.url), startInstance(db.url)]);
  }, 60_000);
  afterAll(async () => {
    for (const i of [a, b]) if (i && i.child.exitCode === null) i.child.kill('SIGKILL');
    await closeDb?.();
  });

  it('a member subscribed on A sees a message sent through B, in order, with every delta', async () => {
    const onA = createClient({ url: `${a.origin}/trpc`, WebSocket: WebSocketImpl });
    const onB = createClient({ url: `${b.origin}/trpc` });
    const session = await onA.auth.register.mutate({
      email: 'two-instances@example.com',
      password: 'correct horse battery staple',
      name: 'Two',
    });
    await onB.auth.login.mutate({
      email: session.user.email,
      password: 'correct horse battery staple',
    });
    const project = await onA.projects.create.mutate({ name: 'Shared' });
    const conversation = await onA.chat.conversations.create.mutate({ projectId: project.id });

    type Event = { type: string; text?: string; message?: { content: string } };
    const events: Event[] = [];
    const ids: number[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const sub = onA.chat.onEvent.subscribe(
        { conversationId: conversation.id },
        {
          onData(t) {
            events.push(t.data as Event);
            ids.push(Number(t.id));
            if ((t.data as Event).type === 'reply.completed') {
              sub.unsubscribe();
              resolve();
            }
          },
          onError: reject,
        },
      );
    });
    await new Promise((r) => setTimeout(r, 300));
    const words = Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ');
    await onB.chat.send.mutate({ conversationId: conversation.id, content: words });
    await done;

    expect(events[0]?.type).toBe('message.created');
    expect(events[1]?.type).toBe('reply.started');
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
    const text = events
      .filter((e) => e.type === 'reply.delta')
      .map((e) => e.text)
      .join('');
    expect(text).toBe(`Echo: ${words}`);
    expect(events.at(-1)?.message?.content).toBe(text);
    await closeClient(onA);
  });

  it('SIGTERM drains and exits cleanly', async () => {
    b.child.kill('SIGTERM');
    expect(await b.exited).toBe(0);
    // A is unaffected.
    expect((await fetch(`${a.origin}/health`)).status).toBe(200);
  });
});
