import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../config';
import { type Api, createApi, createCaller } from '../index';
import type { Logger } from '../lib/logger';
import { createTestDatabase, failure, testConfig } from '../testing';
import type { TestDatabase } from '../testing/database';
import { createMailer, createMailTransport } from './mail';
import { mailOutbox } from './mail.table';
import { latestOutboxMail } from './outbox';
import { decodedBody, header, type LocalSmtpServer, startSmtpServer } from './testing/smtp-server';

/** A real logger that keeps its lines, to check what mail logging reveals. */
function recordingLog() {
  const lines: { level: string; obj: object; msg: string | undefined }[] = [];
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, obj, msg });
    };
  const log: Logger = { error: at('error'), warn: at('warn'), info: at('info') };
  return {
    log,
    lines,
    text: () => JSON.stringify(lines, (_, v) => (v instanceof Error ? v.message : v)),
  };
}

let smtp: LocalSmtpServer;
let database: TestDatabase;
beforeAll(async () => {
  smtp = await startSmtpServer();
  database = await createTestDatabase();
});
afterAll(async () => {
  await smtp.close();
  await database.close();
});

const message = {
  to: 'someone@example.com',
  subject: 'Hello from the tests',
  text: `A line long enough to be wrapped by quoted-printable encoding: ${'x'.repeat(80)} end`,
  html: '<p>Hello <b>there</b></p>',
};

describe('SMTP transport', () => {
  it('delivers to the SMTP server with the configured sender, authenticating from the URL', async () => {
    const config = testConfig({ SMTP_URL: smtp.url, MAIL_FROM: 'Tests <tests@smartspace.test>' });
    const transport = createMailTransport(config, { db: database.db, log: recordingLog().log });
    const before = smtp.received.length;
    await transport.send(message);
    await transport.close();
    const [mail] = (await smtp.waitFor(before + 1)).slice(before);
    expect(mail?.mailFrom).toBe('tests@smartspace.test');
    expect(mail?.rcptTo).toEqual(['someone@example.com']);
    expect(header(mail?.raw ?? '', 'From')).toBe('Tests <tests@smartspace.test>');
    expect(header(mail?.raw ?? '', 'To')).toBe('someone@example.com');
    expect(header(mail?.raw ?? '', 'Subject')).toBe('Hello from the tests');
    const body = decodedBody(mail?.raw ?? '');
    expect(body).toContain(message.text);
    expect(body).toContain(message.html);
    // Nothing is kept in the outbox when SMTP is configured.
    expect(
      await database.db.select().from(mailOutbox).where(eq(mailOutbox.to, message.to)),
    ).toHaveLength(0);
  });

  it('rejects a send the server refuses, and with wrong credentials', async () => {
    const config = testConfig({ SMTP_URL: smtp.url });
    const transport = createMailTransport(config, { db: database.db, log: recordingLog().log });
    await expect(transport.send({ ...message, to: 'reject-me@example.com' })).rejects.toThrow(
      /Mailbox unavailable/,
    );
    const wrong = createMailTransport(
      testConfig({ SMTP_URL: smtp.url.replace('relay-secret', 'nope') }),
      {
        db: database.db,
        log: recordingLog().log,
      },
    );
    await expect(wrong.send(message)).rejects.toThrow(/Invalid username or password/);
  });

  it('logs a failed background send by recipient and subject, never the body', async () => {
    const rec = recordingLog();
    const mailer = createMailer(
      createMailTransport(testConfig({ SMTP_URL: smtp.url }), { db: database.db, log: rec.log }),
      rec.log,
    );
    mailer.sendLater({ ...message, to: 'reject-later@example.com', text: 'secret-body-123' });
    await mailer.idle();
    expect(rec.lines).toHaveLength(1);
    expect(rec.lines[0]).toMatchObject({
      level: 'error',
      msg: 'mail delivery failed',
      obj: { to: 'reject-later@example.com', subject: message.subject },
    });
    expect(rec.text()).not.toContain('secret-body-123');
    await mailer.close();
  });
});

describe('outbox transport (no SMTP_URL)', () => {
  it('stores the whole message and logs only recipient and subject', async () => {
    const rec = recordingLog();
    const transport = createMailTransport(testConfig(), { db: database.db, log: rec.log });
    const to = `outbox-${randomUUID()}@example.com`;
    await transport.send({ ...message, to, text: 'body with secret-link-456' });
    const rows = await database.db.select().from(mailOutbox).where(eq(mailOutbox.to, to));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ subject: message.subject, text: 'body with secret-link-456' });
    expect(rows[0]?.html).toBe(message.html);
    expect(rec.lines).toEqual([
      {
        level: 'info',
        obj: { mailId: rows[0]?.id, to, subject: message.subject },
        msg: 'mail stored in the mail_outbox table (SMTP_URL is unset)',
      },
    ]);
    await transport.send({ ...message, to, subject: 'second' });
    const latest = await latestOutboxMail({ db: database.db, limit: 5, to });
    expect(latest.map((m) => m.subject)).toEqual(['second', message.subject]);
    expect(await latestOutboxMail({ db: database.db, limit: 1 })).toHaveLength(1);
  });

  it('warns at start-up in production that mail is not sent', () => {
    const rec = recordingLog();
    createMailTransport(testConfig({ NODE_ENV: 'production' }), { db: database.db, log: rec.log });
    expect(rec.lines.map((l) => l.level)).toEqual(['warn']);
  });
});

describe('configuration', () => {
  it('has defaults and refuses bad values, naming the variable', () => {
    const c = testConfig();
    expect(c.mail).toEqual({ smtpUrl: undefined, from: 'SmartSpace <no-reply@localhost>' });
    // Unset: the server's own origin, where it serves the web app.
    expect(c.publicAppUrl).toBe('http://127.0.0.1:3000');
    expect(testConfig({ HOST: '0.0.0.0', PORT: '8080' }).publicAppUrl).toBe(
      'http://localhost:8080',
    );
    expect(testConfig({ HOST: '::1' }).publicAppUrl).toBe('http://[::1]:3000');
    expect(testConfig({ PUBLIC_APP_URL: 'https://app.example.com/space/' }).publicAppUrl).toBe(
      'https://app.example.com/space',
    );
    for (const [name, value] of [
      ['SMTP_URL', 'http://mail.example.com'],
      ['PUBLIC_APP_URL', 'ftp://example.com'],
      ['MAIL_FROM', 'no address here'],
    ] as const) {
      expect(() => loadConfig({ NODE_ENV: 'test', DATA_DIR: c.dataDir, [name]: value })).toThrow(
        ConfigError,
      );
      expect(() => loadConfig({ NODE_ENV: 'test', DATA_DIR: c.dataDir, [name]: value })).toThrow(
        name,
      );
    }
  });
});

describe('password reset over SMTP', () => {
  let api: Api;
  const rec = recordingLog();
  beforeAll(async () => {
    api = await createApi({
      config: testConfig({ SMTP_URL: smtp.url, PUBLIC_APP_URL: 'https://app.example.com' }),
      database,
      migrate: false,
      log: rec.log,
    });
  });
  afterAll(() => api.close());
  const caller = () =>
    createCaller(api.createContext({ token: null, ip: '127.0.0.1', requestId: randomUUID() }));

  it('answers before a slow relay accepts the mail, which carries a working link', async () => {
    const email = `smtp-${randomUUID().slice(0, 8)}@example.com`;
    await caller().auth.register({ email, password: 'the old password', name: 'Smtp' });
    const before = smtp.received.length;
    smtp.acceptDelayMs = 1000;
    try {
      const started = performance.now();
      expect(await caller().auth.requestPasswordReset({ email })).toEqual({ ok: true });
      // Waiting for the relay would take over a second; the answer must not.
      expect(performance.now() - started).toBeLessThan(500);
      await api.deps.mail.idle();
    } finally {
      smtp.acceptDelayMs = 0;
    }
    const [mail] = (await smtp.waitFor(before + 1)).slice(before);
    expect(mail?.rcptTo).toEqual([email]);
    expect(header(mail?.raw ?? '', 'Subject')).toBe('Reset your SmartSpace password');
    const token = /https:\/\/app\.example\.com\/reset-password\?token=([A-Za-z0-9_-]{43})/.exec(
      decodedBody(mail?.raw ?? ''),
    )?.[1];
    expect(token).toBeDefined();
    expect(rec.text()).not.toContain(token);

    await caller().auth.resetPassword({ token: token ?? '', newPassword: 'the new password' });
    await caller().auth.login({ email, password: 'the new password' });
    expect(
      await failure(
        caller().auth.resetPassword({ token: token ?? '', newPassword: 'again again' }),
      ),
    ).toEqual({ code: 'BAD_REQUEST', appCode: 'auth.reset_token_invalid' });
  });
});
