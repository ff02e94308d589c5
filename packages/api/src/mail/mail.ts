import type { Config } from '../config';
import type { Db } from '../db/client';
import type { Logger } from '../lib/logger';
import { outboxTransport } from './outbox';
import { smtpTransport } from './smtp';

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  html?: string | undefined;
}

/** Where mail goes: SMTP when configured, else the outbox table. */
export interface MailTransport {
  send(msg: MailMessage): Promise<void>;
  close(): Promise<void>;
}

/** The transport plus delivery that callers need not wait for. */
export interface Mailer extends MailTransport {
  /**
   * Sends without making the caller wait: a message, or what `compose` returns (null: send
   * nothing). Composing in the background too lets a caller answer before doing any work
   * that depends on the recipient (password resets must not tell, by timing, whether an
   * account exists). Failures are logged with recipient and subject, never the body.
   */
  sendLater(msg: MailMessage | (() => Promise<MailMessage | null>)): void;
  /** Resolves once every `sendLater` so far has finished (tests, shutdown). */
  idle(): Promise<void>;
}

export function createMailTransport(config: Config, deps: { db: Db; log: Logger }): MailTransport {
  if (config.mail.smtpUrl)
    return smtpTransport({ url: config.mail.smtpUrl, from: config.mail.from });
  if (config.nodeEnv === 'production') {
    deps.log.warn(
      { transport: 'outbox' },
      'SMTP_URL is unset: mail (password resets) is only stored in the mail_outbox table',
    );
  }
  return outboxTransport(deps);
}

export function createMailer(transport: MailTransport, log: Logger): Mailer {
  const pending = new Set<Promise<void>>();
  const idle = async () => {
    while (pending.size > 0) await Promise.allSettled([...pending]);
  };
  return {
    send: (msg) => transport.send(msg),
    sendLater(msg) {
      // Started on a later turn of the event loop, so the caller's response goes out first
      // even when the work blocks the thread (embedded PGlite runs queries in-process).
      const job = (async () => {
        await new Promise<void>((resolve) => setImmediate(resolve));
        let composed: MailMessage | null = null;
        try {
          composed = typeof msg === 'function' ? await msg() : msg;
          if (composed) await transport.send(composed);
        } catch (err) {
          log.error({ err, to: composed?.to, subject: composed?.subject }, 'mail delivery failed');
        }
      })().finally(() => pending.delete(job));
      pending.add(job);
    },
    idle,
    async close() {
      // Mail accepted before shutdown is still delivered.
      await idle();
      await transport.close();
    },
  };
}
