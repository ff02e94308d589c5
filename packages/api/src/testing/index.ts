import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Config, loadConfig } from '../config';
import { type Api, createApi, createCaller, type Session } from '../index';
import type { BlobStorage } from '../storage/storage';
import { createTestDatabase } from './database';

export {
  FAKE_ANTHROPIC_API_KEY,
  type FakeAnthropic,
  startFakeAnthropic,
} from '../ai/testing/fake-anthropic';
export { FAKE_OPENAI_API_KEY, type FakeOpenAI, startFakeOpenAI } from '../ai/testing/fake-openai';
export { createTestDatabase, type TestDatabase, withDatabase } from './database';
export { failure } from './errors';
export { freePort } from './ports';
export { queryRows, sql } from './rows';
export { proxyDatabaseUrl, startTcpProxy, type TcpProxy } from './tcp-proxy';

export const TEST_JWT_SECRET = 'test-secret-that-is-long-enough-for-hs256-0123456789';

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    JWT_SECRET: TEST_JWT_SECRET,
    DATA_DIR: mkdtempSync(join(tmpdir(), 'smartspace-test-')),
    RATE_LIMIT_PER_MINUTE: '0',
    LOGIN_ATTEMPTS_PER_15_MINUTES: '1000',
    ...env,
  });
}

export interface TestApi {
  api: Api;
  /** A caller as a client with this access token (or none) and IP. */
  caller(token?: string | null, ip?: string): ReturnType<typeof createCaller>;
  /** Registers a fresh user; the first one of a database becomes admin. */
  signUp(name?: string): Promise<Session>;
  close(): Promise<void>;
}

/** Options passed through to createApi (e.g. the mock model's pause between chunks). */
export interface TestApiOptions {
  mockChunkDelayMs?: number;
  /** Blob storage for files (a failure-injecting wrapper); default DATA_DIR/files. */
  storage?: BlobStorage;
}

export async function createTestApi(
  env: Record<string, string> = {},
  options: TestApiOptions = {},
): Promise<TestApi> {
  const database = await createTestDatabase();
  const api = await createApi({ config: testConfig(env), database, migrate: false, ...options });
  const caller = (token: string | null = null, ip = '127.0.0.1') =>
    createCaller(api.createContext({ token, ip, requestId: randomUUID() }));
  return {
    api,
    caller,
    signUp: (name = 'Test User') =>
      caller().auth.register({
        email: `${name.toLowerCase().replace(/\W+/g, '.')}.${randomUUID().slice(0, 8)}@example.com`,
        password: 'correct horse battery staple',
        name,
      }),
    async close() {
      await api.close();
      await database.close();
    },
  };
}
