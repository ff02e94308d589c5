import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { closeClient, createClient, memorySessionStore } from '@smartspace/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cli,
  openTerminal,
  PASSWORD,
  register,
  type Server,
  startServer,
  tempConfigHome,
} from './harness';

const count = (text: string, pattern: RegExp) => (text.match(pattern) ?? []).length;

let server: Server;
const home = tempConfigHome();

beforeAll(async () => {
  server = await startServer();
  await register(server.url, 'carol@example.com', 'Carol');
  const login = await cli(home, ['login', '--url', server.url], {
    input: `carol@example.com\n${PASSWORD}\n`,
  });
  expect(login.code).toBe(0);
  expect((await cli(home, ['projects', 'create', 'Chatty'])).code).toBe(0);
});

afterAll(async () => {
  await server?.stop();
});

describe('login in a terminal', () => {
  it('asks for email and password and never echoes the password', async () => {
    const fresh = tempConfigHome();
    const term = openTerminal(fresh, ['login', '--url', server.url]);
    await term.waitFor(/Email: /);
    term.type('carol@example.com\r');
    await term.waitFor(/Password: /);
    term.type(`${PASSWORD}\r`);
    await term.waitFor(/Signed in to .+ as carol@example\.com/);
    expect(await term.exit()).toBe(0);
    expect(term.output()).toContain('carol@example.com');
    expect(term.output()).not.toContain(PASSWORD);
    expect(term.output()).not.toMatch(/\*{4,}/);
  });
});

describe('interactive chat', () => {
  it('streams replies; Ctrl-C stops a reply and the prompt returns; Ctrl-D exits', async () => {
    const term = openTerminal(home, ['chat']);
    await term.waitFor(/you › /);
    term.type('hello there\r');
    await term.waitFor(/Echo: hello there[\s\S]*you › /);

    // About 2000 chunks at the mock's pace: seconds of streaming to interrupt.
    term.type(`long ${'word '.repeat(2000)}\r`);
    await term.waitFor(/ai {2}› Echo: long word/);
    const prompts = count(term.output(), /you › /g);
    term.type('\x03');
    await term.waitFor(/\(reply stopped\)/);
    await term.waitFor(new RegExp(`(you › [\\s\\S]*){${prompts + 1}}`));
    const stopped = term.output().split('Echo: long')[1] ?? '';
    expect(count(stopped, /word/g)).toBeLessThan(2000);

    // The reply really ended on the server, cancelled, and the session goes on.
    const conversationId = /Conversation ([0-9a-f-]{36})/.exec(term.output())?.[1];
    expect(conversationId).toBeDefined();
    const saved = JSON.parse(readFileSync(join(home, 'smartspace', 'credentials.json'), 'utf8'));
    const client = createClient({
      url: `${server.url}/trpc`,
      session: memorySessionStore(saved.session),
    });
    try {
      const page = await client.chat.messages.list.query({ conversationId: conversationId ?? '' });
      const replies = page.items.filter((m) => m.role === 'assistant');
      expect(replies.map((m) => m.status).sort()).toEqual(['cancelled', 'complete']);
    } finally {
      await closeClient(client);
    }

    term.type('still here?\r');
    // Ctrl-D ends the session at the prompt; typed while a reply streams it would be ignored.
    await term.waitFor(/Echo: still here\?[\s\S]*you › /);
    term.type('\x04');
    expect(await term.exit()).toBe(0);
    // Five round trips through a pty, each allowed 30 s: on a loaded CI machine their sum can
    // pass the default 60 s even when each is well within its own wait.
  }, 150_000);

  it('Ctrl-D while a reply streams stops it and ends the session (no hang)', async () => {
    const term = openTerminal(home, ['chat']);
    await term.waitFor(/you › /);
    term.type(`long ${'word '.repeat(2000)}\r`);
    await term.waitFor(/ai {2}› Echo: long word/);
    term.type('\x04');
    expect(await term.exit()).toBe(0);
    const stopped = term.output().split('Echo: long')[1] ?? '';
    expect(stopped.match(/word/g)?.length ?? 0).toBeLessThan(2000);
  });

  it('Ctrl-C at the prompt exits', async () => {
    const term = openTerminal(home, ['chat']);
    await term.waitFor(/you › /);
    term.type('\x03');
    expect(await term.exit()).toBe(0);
  });

  it('without a terminal, chat asks for -m (usage of a pipe is an error)', async () => {
    const r = await cli(home, ['chat']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Interactive chat needs a terminal');
  });
});
