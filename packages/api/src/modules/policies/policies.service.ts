import { eq } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { formatUsdc } from '../../lib/money';
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
  projectId: string;
  patch: Partial<PolicyRules>;
}): Promise<Policy> {
  const patch = Object.fromEntries(Object.entries(opts.patch).filter(([, v]) => v !== undefined));
  await opts.db
    .insert(policies)
    .values({ projectId: opts.projectId, ...patch, updatedAt: new Date() })
    .onConflictDoUpdate({ target: policies.projectId, set: { ...patch, updatedAt: new Date() } });
  return getPolicy(opts.db, opts.projectId);
}
