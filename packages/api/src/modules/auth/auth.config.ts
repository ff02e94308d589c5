import { z } from 'zod';
import { int, list, setting } from '../../lib/settings';

export const MIN_JWT_SECRET_LENGTH = 32;

export const authConfig = {
  jwt: {
    secret: setting({
      env: 'JWT_SECRET',
      schema: z
        .string()
        .min(MIN_JWT_SECRET_LENGTH, `must be at least ${MIN_JWT_SECRET_LENGTH} characters`)
        .optional(),
      doc: 'HS256 key; required in production, elsewhere generated once into DATA_DIR/jwt-secret',
    }),
    issuer: setting({
      env: 'JWT_ISSUER',
      schema: z.string().min(1),
      default: 'smartspace',
      doc: 'pinned on verification',
    }),
    audience: setting({
      env: 'JWT_AUDIENCE',
      schema: z.string().min(1),
      default: 'smartspace-api',
      doc: 'pinned on verification',
    }),
    accessTtlSeconds: setting({
      env: 'ACCESS_TOKEN_TTL_SECONDS',
      schema: int(30, 3600),
      default: '900',
      doc: 'access token lifetime',
    }),
  },
  refreshTokenTtlDays: setting({
    env: 'REFRESH_TOKEN_TTL_DAYS',
    schema: int(1, 365),
    default: '30',
    doc: 'absolute lifetime of a sign-in; rotation never extends it',
  }),
  sessionCacheMs: setting({
    env: 'SESSION_CACHE_MS',
    schema: int(0, 60_000),
    default: '5000',
    doc: 'a session check that stood is kept this long in the process (ended sessions and changed users are forgotten at once, on every instance, by NOTIFY); 0: every call checks in the database',
  }),
  loginAttemptsPer15Minutes: setting({
    env: 'LOGIN_ATTEMPTS_PER_15_MINUTES',
    schema: int(1, 10_000),
    default: '10',
    doc: 'sign-in attempts per account, whatever the IP',
  }),
  adminEmails: setting({
    env: 'ADMIN_EMAILS',
    schema: list.transform((emails) => emails.map((e) => e.toLowerCase())).default([]),
    doc: 'platform admins, promoted at registration or next sign-in',
  }),
};
