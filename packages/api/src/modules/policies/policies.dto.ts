import { formatUsdc } from '../../lib/money';

export interface Policy {
  projectId: string;
  allowedModels: string[] | null;
  maxOutputTokens: number | null;
  maxCostPerRequest: string | null;
  requestsPerMinute: number | null;
  tokensPerMinute: number | null;
  /** A run's model step that could cost more (USDC) waits for a person's approval first. */
  approvalCostThreshold: string | null;
  updatedAt: string | null;
}

export interface PolicyRules {
  allowedModels: string[] | null;
  maxOutputTokens: number | null;
  maxCostPerRequest: bigint | null;
  requestsPerMinute: number | null;
  tokensPerMinute: number | null;
  approvalCostThreshold: bigint | null;
}

/** A project's policy; a project that never set one has every rule null. */
export function toPolicy(projectId: string, r: PolicyRules & { updatedAt: Date | null }): Policy {
  return {
    projectId,
    allowedModels: r.allowedModels,
    maxOutputTokens: r.maxOutputTokens,
    maxCostPerRequest: r.maxCostPerRequest === null ? null : formatUsdc(r.maxCostPerRequest),
    requestsPerMinute: r.requestsPerMinute,
    tokensPerMinute: r.tokensPerMinute,
    approvalCostThreshold:
      r.approvalCostThreshold === null ? null : formatUsdc(r.approvalCostThreshold),
    updatedAt: r.updatedAt?.toISOString() ?? null,
  };
}
