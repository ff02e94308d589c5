import { eq, sql } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { type Actor, auditedBy } from '../../lib/actor';
import { recordAudit } from '../audit/audit.service';
import { type Policy, type PolicyRules, toPolicy } from './policies.dto';
import { policies } from './policies.table';

/** NOTIFY payload: the project whose policy changed; sent in the updating transaction. */
export const POLICIES_CHANNEL = 'smartspace_policies';

const NONE: PolicyRules = {
  allowedModels: null,
  maxOutputTokens: null,
  maxCostPerRequest: null,
  requestsPerMinute: null,
  tokensPerMinute: null,
  approvalCostThreshold: null,
};

export async function loadRules(db: Db, projectId: string): Promise<PolicyRules> {
  const [row] = await db.select().from(policies).where(eq(policies.projectId, projectId));
  return row ?? NONE;
}

export async function getPolicy(db: Db, projectId: string): Promise<Policy> {
  const [row] = await db.select().from(policies).where(eq(policies.projectId, projectId));
  return toPolicy(projectId, row ?? { ...NONE, updatedAt: null });
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
    // Every instance's policy cache forgets this project when the change commits.
    await tx.execute(sql`select pg_notify(${POLICIES_CHANNEL}, ${opts.projectId})`);
    return policy;
  });
}
