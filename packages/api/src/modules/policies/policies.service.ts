import { eq } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { type Actor, auditedBy } from '../../lib/actor';
import { formatUsdc } from '../../lib/money';
import { recordAudit } from '../audit/audit.service';
import { policies } from './policies.table';

export interface Policy {
  projectId: string;
  allowedModels: string[] | null;
  maxOutputTokens: number | null;
  maxCostPerRequest: string | null;
  requestsPerMinute: number | null;
  tokensPerMinute: number | null;
  updatedAt: string | null;
}

export interface PolicyRules {
  allowedModels: string[] | null;
  maxOutputTokens: number | null;
  maxCostPerRequest: bigint | null;
  requestsPerMinute: number | null;
  tokensPerMinute: number | null;
}

const NONE: PolicyRules = {
  allowedModels: null,
  maxOutputTokens: null,
  maxCostPerRequest: null,
  requestsPerMinute: null,
  tokensPerMinute: null,
};

export async function loadRules(db: Db, projectId: string): Promise<PolicyRules> {
  const [row] = await db.select().from(policies).where(eq(policies.projectId, projectId));
  return row ?? NONE;
}

export async function getPolicy(db: Db, projectId: string): Promise<Policy> {
  const [row] = await db.select().from(policies).where(eq(policies.projectId, projectId));
  const r = row ?? { ...NONE, updatedAt: null };
  return {
    projectId,
    allowedModels: r.allowedModels,
    maxOutputTokens: r.maxOutputTokens,
    maxCostPerRequest: r.maxCostPerRequest === null ? null : formatUsdc(r.maxCostPerRequest),
    requestsPerMinute: r.requestsPerMinute,
    tokensPerMinute: r.tokensPerMinute,
    updatedAt: r.updatedAt?.toISOString() ?? null,
  };
}

/** Fields left out stay as they are; null removes that rule. */
export async function updatePolicy(opts: {
  db: Db;
  actor: Actor;
  projectId: string;
  patch: Partial<PolicyRules>;
}): Promise<Policy> {
  const patch = Object.fromEntries(Object.entries(opts.patch).filter(([, v]) => v !== undefined));
  return opts.db.transaction(async (tx) => {
    await tx
      .insert(policies)
      .values({ projectId: opts.projectId, ...patch, updatedAt: new Date() })
      .onConflictDoUpdate({ target: policies.projectId, set: { ...patch, updatedAt: new Date() } });
    const policy = await getPolicy(tx, opts.projectId);
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'policies.updated',
      projectId: opts.projectId,
      target: opts.projectId,
      metadata: { changed: Object.keys(opts.patch), policy: { ...policy } },
    });
    return policy;
  });
}
