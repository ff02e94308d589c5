import { Writable } from 'node:stream';
import { CloseCode, latestOutboxMail } from '@smartspace/api';
import { createClient } from '@smartspace/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './harness';
import { rawSocket } from './sockets';

let server: TestServer;
const logLines: string[] = [];
const logs = new Writable({
  write(chunk, _enc, done) {
    logLines.push(String(chunk));
    done();
  },
});
beforeAll(async () => {
  server = await startTestServer({}, { logs });
});
afterAll(() => server.close());

describe('password reset over HTTP and WebSocket', () => {
  it('closes the open sockets of the user; the log names the mail but not the link', async () => {
    const client = createClient({ url: `${server.origin}/trpc` });
    const email = `reset-e2e-${Date.now()}@example.com`;
    const session = await client.auth.register.mutate({
      email,
      password: 'the old password',
      name: 'Reset',
    });
    const socket = rawSocket(server.origin, { token: session.accessToken });
    await socket.opened;
    // A call answered over the socket: it is registered, so the reset must reach it.
    socket.ws.send(JSON.stringify({ id: 1, method: 'query', params: { path: 'users.me' } }));
    await expect
      .poll(() => socket.messages.find((m) => (m as { id?: number }).id === 1))
      .toMatchObject({ result: { data: { email } } });

    expect(await client.auth.requestPasswordReset.mutate({ email })).toEqual({ ok: true });
    await server.api.deps.mail.idle();
    const [mail] = await latestOutboxMail({ db: server.api.database.db, limit: 1, to: email });
    const token = /reset-password\?token=([A-Za-z0-9_-]+)/.exec(mail?.text ?? '')?.[1] ?? '';
    expect(token).toHaveLength(43);

    expect(
      await client.auth.resetPassword.mutate({ token, newPassword: 'the new password' }),
    ).toEqual({ ok: true });
    expect((await socket.closed).code).toBe(CloseCode.sessionEnded);

    const mailLines = logLines.filter((l) => l.includes('mail_outbox'));
    expect(mailLines).toHaveLength(1);
    expect(mailLines[0]).toContain(email);
    expect(logLines.join('\n')).not.toContain(token);
  });
});
