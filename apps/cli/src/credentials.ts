import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Session, SessionStore } from '@smartspace/client';
import { cliEnv } from './env';

/** What `login` leaves behind: the server it talked to and either a session or an API key. */
export interface Credentials {
  url: string;
  session?: Session | null;
  apiKey?: string;
  /** Default project for commands that need one (saved with an API key, its only project). */
  project?: string;
}

export function configDir(): string {
  const base = cliEnv.configHome() ?? join(homedir(), '.config');
  return join(base, 'smartspace');
}

export function credentialsPath(): string {
  return join(configDir(), 'credentials.json');
}

export function readCredentials(): Credentials | null {
  let text: string;
  try {
    text = readFileSync(credentialsPath(), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const parsed = JSON.parse(text) as Credentials;
    return typeof parsed.url === 'string' ? parsed : null;
  } catch {
    // A damaged file is as good as none: the user signs in again.
    return null;
  }
}

/**
 * Written to a temporary file created 0600 and renamed over the old one, so the tokens are
 * never readable by others, not even for a moment, and a crash never leaves half a file.
 */
export function writeCredentials(creds: Credentials): void {
  const dir = configDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const target = credentialsPath();
  const tmp = `${target}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(creds, null, 2)}\n`, { mode: 0o600 });
  // The mode given to writeFileSync is masked by the umask; make sure.
  chmodSync(tmp, 0o600);
  renameSync(tmp, target);
}

export function removeCredentials(): void {
  rmSync(credentialsPath(), { force: true });
}

/** The client's session store, backed by the credentials file (refreshed tokens land there). */
export function fileSessionStore(url: string): SessionStore {
  return {
    get: () => {
      const creds = readCredentials();
      return creds?.url === url ? (creds.session ?? null) : null;
    },
    set: (session) => {
      const creds = readCredentials();
      if (session === null && !creds) return;
      writeCredentials({ ...(creds?.url === url ? creds : {}), url, session });
    },
  };
}
