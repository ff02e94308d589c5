import { formatUsdc } from '../../lib/money';
import type { apiRequests } from './usage.table';

export type GroupBy = 'day' | 'model' | 'agent' | 'member' | 'key';

export interface UsageRow {
  key: string | null;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  /** Of inputTokens: written to / read from the prompt cache. */
  cacheWriteTokens: number;
  cacheReadTokens: number;
  cost: string;
}

export interface ApiRequest {
  id: string;
  source: 'chat' | 'run' | 'api';
  model: string;
  status: string;
  errorCode: string | null;
  userId: string | null;
  /** The project API key the call was made with; null for a person's own calls. */
  keyId: string | null;
  agentId: string | null;
  runId: string | null;
  conversationId: string | null;
  inputTokens: number;
  outputTokens: number;
  /** Of inputTokens: written to / read from the prompt cache (priced apart). */
  cacheWriteTokens: number;
  cacheReadTokens: number;
  cost: string;
  latencyMs: number | null;
  createdAt: string;
}

export function toApiRequest(r: typeof apiRequests.$inferSelect): ApiRequest {
  return {
    id: r.id,
    source: r.source,
    model: r.model,
    status: r.status,
    errorCode: r.errorCode,
    userId: r.userId,
    keyId: r.keyId,
    agentId: r.agentId,
    runId: r.runId,
    conversationId: r.conversationId,
    inputTokens: r.inputTokens,
    outputTokens: r.outputTokens,
    cacheWriteTokens: r.cacheWriteTokens,
    cacheReadTokens: r.cacheReadTokens,
    cost: formatUsdc(r.cost),
    latencyMs: r.latencyMs,
    createdAt: r.createdAt.toISOString(),
  };
}
