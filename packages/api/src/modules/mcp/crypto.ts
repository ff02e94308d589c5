import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MIN_MCP_SECRET_KEY_LENGTH } from './mcp.config';

/**
 * Header values of MCP servers (their tokens) are sealed with AES-256-GCM. The key is derived
 * from MCP_SECRET_KEY by HKDF, so the setting can be any long string; the server's id is the
 * additional data, so a sealed value copied onto another server's row does not open there.
 */

const VERSION = 'v1';
const INFO = 'smartspace/mcp-headers/v1';

export type HeaderKey = Buffer;

export function deriveKey(secret: string): HeaderKey {
  return Buffer.from(hkdfSync('sha256', secret, 'smartspace-mcp', INFO, 32));
}

/**
 * The key to seal with: MCP_SECRET_KEY, else (outside production) one generated once into
 * DATA_DIR, like the JWT secret; null in production without the setting.
 */
export function headerKey(opts: {
  secret: string | undefined;
  nodeEnv: string;
  dataDir: string;
}): HeaderKey | null {
  if (opts.secret !== undefined) return deriveKey(opts.secret);
  if (opts.nodeEnv === 'production') return null;
  const file = join(opts.dataDir, 'mcp-secret-key');
  try {
    const stored = readFileSync(file, 'utf8').trim();
    if (stored.length >= MIN_MCP_SECRET_KEY_LENGTH) return deriveKey(stored);
  } catch {
    // not generated yet
  }
  const secret = randomBytes(48).toString('base64url');
  mkdirSync(opts.dataDir, { recursive: true });
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return deriveKey(secret);
}

export function sealHeaders(
  key: HeaderKey,
  serverId: string,
  headers: Record<string, string>,
): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(serverId));
  const body = Buffer.concat([cipher.update(JSON.stringify(headers), 'utf8'), cipher.final()]);
  const tag = cipher.getAuthTag();
  return [VERSION, iv, tag, body]
    .map((p) => (typeof p === 'string' ? p : p.toString('base64url')))
    .join('.');
}

export class SealBroken extends Error {
  override name = 'SealBroken';
}

/** The headers sealed for this server; SealBroken when the key or the server differ. */
export function openHeaders(
  key: HeaderKey,
  serverId: string,
  sealed: string,
): Record<string, string> {
  const [version, iv, tag, body] = sealed.split('.');
  if (version !== VERSION || !iv || !tag || body === undefined) {
    throw new SealBroken('unknown sealed header format');
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(serverId));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    const text = Buffer.concat([
      decipher.update(Buffer.from(body, 'base64url')),
      decipher.final(),
    ]).toString('utf8');
    return JSON.parse(text) as Record<string, string>;
  } catch {
    throw new SealBroken('the header values cannot be opened with this MCP_SECRET_KEY');
  }
}
