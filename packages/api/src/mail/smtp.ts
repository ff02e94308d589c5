import { createTransport } from 'nodemailer';
import type { MailTransport } from './mail';

/**
 * SMTP through nodemailer. `url` is smtp:// (STARTTLS when the server offers it) or smtps://
 * (TLS from the start), with credentials and nodemailer options in the URL
 * (smtp://user:pass@host:587?pool=true). Timeouts are shorter than nodemailer's minutes-long
 * defaults so a dead relay fails a send instead of holding it open.
 */
export function smtpTransport(opts: { url: string; from: string }): MailTransport {
  const transporter = createTransport(
    {
      url: opts.url,
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 30_000,
    },
    { from: opts.from },
  );
  return {
    async send(msg) {
      await transporter.sendMail({
        to: msg.to,
        subject: msg.subject,
        text: msg.text,
        ...(msg.html !== undefined ? { html: msg.html } : {}),
      });
    },
    async close() {
      transporter.close();
    },
  };
}
