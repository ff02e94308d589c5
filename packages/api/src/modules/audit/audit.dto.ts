import type { Json } from './audit.hash';
import type { AuditEventRow } from './audit.table';

export interface AuditEvent {
  id: string;
  at: string;
  actorId: string | null;
  /** The project API key the actor used; null when they acted themselves. */
  actorKeyId: string | null;
  action: string;
  projectId: string | null;
  target: string | null;
  ip: string | null;
  metadata: Record<string, Json>;
}

export interface AuditVerification {
  ok: boolean;
  checked: number;
  firstBrokenId: string | null;
}

export function toAuditEvent(row: AuditEventRow): AuditEvent {
  return {
    id: String(row.id),
    at: row.at.toISOString(),
    actorId: row.actorId,
    actorKeyId: row.actorKeyId,
    action: row.action,
    projectId: row.projectId,
    target: row.target,
    ip: row.ip,
    metadata: row.metadata,
  };
}
