import { z } from 'zod';
import { setting } from '../lib/settings';

export const mailConfig = {
  mail: {
    smtpUrl: setting({
      env: 'SMTP_URL',
      schema: z
        .string()
        .regex(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL')
        .optional(),
      doc: 'unset: mail is stored in mail_outbox and not sent; holds credentials, never log it',
    }),
    from: setting({
      env: 'MAIL_FROM',
      schema: z
        .string()
        .trim()
        .regex(/^[^\r\n]*@[^\r\n]*$/, 'must be an address such as Name <no-reply@example.com>'),
      default: 'SmartSpace <no-reply@localhost>',
      doc: 'sender of every mail',
    }),
  },
};
