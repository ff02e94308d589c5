import type { Db } from '../../db/client';
import type { PolicyRules } from './policies.dto';
import { loadRules, POLICIES_CHANNEL } from './policies.service';

/**
 * Each project's policy rules, kept in process: the gateway reads them on every model call,
 * and they change rarely. A change is forgotten at once on the instance that made it, on the
 * others when its NOTIFY arrives (a few milliseconds after the commit). Entries also expire
 * after `ttlMs`, the bound should a notification be lost while the LISTEN connection
 * reconnects.
 */
export interface PolicyCache {
  rules(projectId: string): Promise<PolicyRules>;
  /** Drops the cached rules of `projectId` (its policy changed). */
  forget(projectId: string): void;
  close(): Promise<void>;
}

export interface PolicyCacheOptions {
  db: Db;
  /** LISTEN on POLICIES_CHANNEL; resolves to unlisten. */
  listen?: (channel: string, onPayload: (payload: string) => void) => Promise<() => Promise<void>>;
  ttlMs?: number;
  maxEntries?: number;
}

export async function createPolicyCache(opts: PolicyCacheOptions): Promise<PolicyCache> {
  const ttlMs = opts.ttlMs ?? 5_000;
  const maxEntries = opts.maxEntries ?? 10_000;
  // The promise is cached, so concurrent calls for one project share one read; a read that
  // was under way when its entry was forgotten is not put back.
  const entries = new Map<string, { rules: Promise<PolicyRules>; expires: number }>();
  const forget = (projectId: string) => {
    entries.delete(projectId);
  };
  const unlisten = opts.listen ? await opts.listen(POLICIES_CHANNEL, forget) : null;
  return {
    rules(projectId) {
      const now = Date.now();
      const hit = entries.get(projectId);
      if (hit && hit.expires > now) return hit.rules;
      const rules = loadRules(opts.db, projectId);
      const entry = { rules, expires: now + ttlMs };
      entries.delete(projectId);
      if (entries.size >= maxEntries) {
        // Oldest first: Map keeps insertion order.
        const oldest = entries.keys().next().value;
        if (oldest !== undefined) entries.delete(oldest);
      }
      entries.set(projectId, entry);
      // A failed read is not cached.
      rules.catch(() => {
        if (entries.get(projectId) === entry) entries.delete(projectId);
      });
      return rules;
    },
    forget,
    async close() {
      entries.clear();
      await unlisten?.();
    },
  };
}
