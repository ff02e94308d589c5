import { createHash } from 'node:crypto';

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** The previous hash of the first row. */
export const GENESIS_HASH = '0'.repeat(64);

/** The hashed content of a row: everything but the id (assigned by a sequence, with gaps). */
export interface HashedContent {
  at: Date;
  actorId: string | null;
  actorKeyId: string | null;
  action: string;
  projectId: string | null;
  target: string | null;
  ip: string | null;
  metadata: Record<string, Json>;
  prevHash: string;
}

/**
 * JSON with object keys sorted at every depth. jsonb does not keep key order, so the stored
 * metadata reads back in another order; sorting makes the hash input independent of that.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const s = JSON.stringify(value);
    if (s === undefined) throw new Error(`not JSON: ${String(value)}`);
    return s;
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** sha256 (hex) over the canonical JSON of the row's content and the previous row's hash. */
export function auditHash(c: HashedContent): string {
  const input = canonicalJson({
    action: c.action,
    actorId: c.actorId,
    // Hashed only when set, so rows written before keys existed keep their hashes.
    actorKeyId: c.actorKeyId ?? undefined,
    at: c.at.toISOString(),
    ip: c.ip,
    metadata: c.metadata,
    prevHash: c.prevHash,
    projectId: c.projectId,
    target: c.target,
  });
  return createHash('sha256').update(input).digest('hex');
}
