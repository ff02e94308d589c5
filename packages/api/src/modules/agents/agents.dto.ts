import type { AgentRow } from './agents.table';

export interface Agent {
  id: string;
  projectId: string;
  name: string;
  description: string | null;
  instructions: string;
  model: string;
  tools: string[];
  /** Tools (of `tools`) whose every call waits for a person's approval. */
  requiresApproval: string[];
  handoffs: string[];
  outputSchema: Record<string, unknown> | null;
  maxSteps: number;
  status: 'active' | 'inactive';
  createdAt: string;
  updatedAt: string;
}

export function toAgent(r: AgentRow): Agent {
  return {
    id: r.id,
    projectId: r.projectId,
    name: r.name,
    description: r.description,
    instructions: r.instructions,
    model: r.model,
    tools: r.tools,
    requiresApproval: r.requiresApproval,
    handoffs: r.handoffs,
    outputSchema: r.outputSchema ?? null,
    maxSteps: r.maxSteps,
    status: r.status,
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
  };
}

export interface AgentFields {
  name: string;
  description?: string | null | undefined;
  instructions: string;
  model: string;
  tools?: string[] | undefined;
  requiresApproval?: string[] | undefined;
  handoffs?: string[] | undefined;
  outputSchema?: Record<string, unknown> | null | undefined;
  maxSteps?: number | undefined;
  status?: 'active' | 'inactive' | undefined;
}
