import type { MailMessage } from '../../mail/mail';

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );

/** The link points at the web app, which posts the token to `auth.resetPassword`. */
export function passwordResetLink(publicAppUrl: string, token: string): string {
  return `${publicAppUrl}/reset-password?token=${encodeURIComponent(token)}`;
}

export function passwordResetMail(opts: {
  to: string;
  link: string;
  ttlMinutes: number;
}): MailMessage {
  const intro = `Someone, hopefully you, asked to reset the password of the SmartSpace account ${opts.to}.`;
  const ask = `Open this link within ${opts.ttlMinutes} minutes to choose a new password. It works once, and signs you out everywhere:`;
  const ignore = 'If you did not ask for this, ignore this email: your password stays as it is.';
  return {
    to: opts.to,
    subject: 'Reset your SmartSpace password',
    text: `${intro}\n\n${ask}\n\n${opts.link}\n\n${ignore}\n`,
    html: [
      `<p>${escapeHtml(intro)}</p>`,
      `<p>${escapeHtml(ask)}</p>`,
      `<p><a href="${escapeHtml(opts.link)}">Reset your password</a></p>`,
      `<p>${escapeHtml(ignore)}</p>`,
    ].join('\n'),
  };
}
