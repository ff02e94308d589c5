import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { z } from 'zod';
import { aiConfig } from './ai/ai.config';
import { MOCK_MODEL_ID, MODEL_IDS } from './ai/models';
import { loadModelRoutes, type ModelRoute, RoutesError } from './ai/routes';
import { ARC_TESTNET_CHAIN_ID, chainConfig } from './chain/chain.config';
import { databaseConfig } from './db/db.config';
import { listSettings, type Setting, type SettingsOutput, settingsSchema } from './lib/settings';
import { mailConfig } from './mail/mail.config';
import { authConfig, MIN_JWT_SECRET_LENGTH } from './modules/auth/auth.config';
import { billingConfig } from './modules/billing/billing.config';
import { chatConfig } from './modules/chat/chat.config';
import { helpConfig } from './modules/help/help.config';
import { runsConfig } from './modules/runs/runs.config';
import { realtimeConfig } from './realtime/realtime.config';
import { serverConfig } from './server.config';
import { storageConfig } from './storage/storage.config';

/**
 * The one module that reads the environment (ARCHITECTURE.md). Everything else receives a
 * `Config`. A bad or missing setting stops start-up with a message naming the variable.
 * Each setting is declared once, in its feature's `*.config.ts`.
 */

const settings = {
  ...serverConfig,
  ...databaseConfig,
  ...authConfig,
  ...aiConfig,
  ...realtimeConfig,
  ...chatConfig,
  ...billingConfig,
  ...runsConfig,
  ...mailConfig,
  ...storageConfig,
  ...chainConfig,
  ...helpConfig,
};

/** Every setting; a test checks README's table and `.env.example` against them. */
export const allSettings: readonly Setting[] = listSettings(settings);

type Settings = SettingsOutput<typeof settings>;

const mockModelEnabled = (s: Settings) => s.models.mockEnabled ?? s.nodeEnv !== 'production';

/** Rules that span settings; issues name the variable to change. */
function checkAcrossSettings(s: Settings, ctx: z.RefinementCtx) {
  const issue = (variable: string, message: string) =>
    ctx.addIssue({ code: 'custom', path: [variable], message });
  if (s.jwt.secret === undefined && s.nodeEnv === 'production') {
    issue(
      'JWT_SECRET',
      `required when NODE_ENV=production (at least ${MIN_JWT_SECRET_LENGTH} characters)`,
    );
  }
  if (s.chain.id !== ARC_TESTNET_CHAIN_ID && !s.chain.rpcUrl) {
    issue('CHAIN_RPC_URL', `required when CHAIN_ID is not ${ARC_TESTNET_CHAIN_ID} (Arc testnet)`);
  }
  if (s.models.defaultModel === MOCK_MODEL_ID && !mockModelEnabled(s)) {
    issue(
      'DEFAULT_MODEL',
      `${MOCK_MODEL_ID} is disabled (set MOCK_MODEL_ENABLED=true to allow it)`,
    );
  }
  const { accessKeyId, secretAccessKey } = s.files.s3;
  if (accessKeyId && !secretAccessKey) {
    issue('S3_SECRET_ACCESS_KEY', 'required with S3_ACCESS_KEY_ID (set both or neither)');
  }
  if (secretAccessKey && !accessKeyId) {
    issue('S3_ACCESS_KEY_ID', 'required with S3_SECRET_ACCESS_KEY (set both or neither)');
  }
}

/**
 * The server's own origin, where it serves the web app: a wildcard listen address is reached
 * as localhost (set PUBLIC_APP_URL when users reach it under another name).
 */
function ownOrigin(host: string, port: number): string {
  const name = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
  return `http://${name.includes(':') ? `[${name}]` : name}:${port}`;
}

/** Values computed from several settings; runs only once every check has passed. */
function derive(s: Settings) {
  const { bucket, accessKeyId, secretAccessKey, ...s3 } = s.files.s3;
  return {
    ...s,
    jwt: { ...s.jwt, secret: jwtSecret(s.jwt.secret, s.dataDir) },
    models: { ...s.models, mockEnabled: mockModelEnabled(s) },
    publicAppUrl: s.publicAppUrl ?? ownOrigin(s.host, s.port),
    files: {
      uploadMaxBytes: s.files.uploadMaxBytes,
      /** Local blob storage, used when `s3` is unset. */
      dir: join(s.dataDir, 'files'),
      /** Set with S3_BUCKET; credentials unset = the AWS SDK's default chain. */
      s3: bucket
        ? {
            bucket,
            ...s3,
            credentials:
              accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined,
          }
        : undefined,
    },
  };
}

const configSchema = settingsSchema(settings).superRefine(checkAcrossSettings).transform(derive);

export type Config = z.output<typeof configSchema> & {
  /** MODEL_ROUTES, with each route's credentials read from the variables it names. */
  modelRoutes: readonly ModelRoute[];
};

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Reads and validates settings; `env` defaults to the process environment. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Treat empty strings as unset, so `FOO=` in an .env file means "use the default".
  const cleaned = Object.fromEntries(
    Object.entries(env).filter(([, v]) => v !== undefined && v !== ''),
  );
  const parsed = configSchema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  // Routes name the variables holding their keys, so they are read from the whole environment.
  let modelRoutes: ModelRoute[];
  try {
    modelRoutes = loadModelRoutes(cleaned);
  } catch (err) {
    if (err instanceof RoutesError) throw new ConfigError(err.message);
    throw err;
  }
  const { defaultModel } = parsed.data.models;
  const known = [...MODEL_IDS, ...modelRoutes.map((r) => r.id)];
  if (defaultModel !== undefined && !known.includes(defaultModel)) {
    throw new ConfigError(
      `Invalid configuration:\n  DEFAULT_MODEL: must be a built-in model or a MODEL_ROUTES id (${known.join(', ')})`,
    );
  }
  return { ...parsed.data, modelRoutes };
}

/**
 * In production the secret must be given (checked above). Elsewhere one is generated once and
 * kept in the data directory, so restarts keep sessions valid and no secret lives in the code.
 */
function jwtSecret(given: string | undefined, dataDir: string): Uint8Array<ArrayBuffer> {
  if (given !== undefined) return new TextEncoder().encode(given);
  const file = join(dataDir, 'jwt-secret');
  try {
    const stored = readFileSync(file, 'utf8').trim();
    if (stored.length >= MIN_JWT_SECRET_LENGTH) return new TextEncoder().encode(stored);
  } catch {
    // not generated yet
  }
  const secret = randomBytes(48).toString('base64url');
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return new TextEncoder().encode(secret);
}
