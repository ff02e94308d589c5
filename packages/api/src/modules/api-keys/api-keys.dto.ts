import type { ProjectRole } from '../projects/roles';
import type { ApiKeyRow } from './api-keys.table';

/** A key as listed: everything but the secret, which exists only in the create answer. */
export interface ApiKey {
  id: string;
  projectId: string;
  name: string;
  role: ProjectRole;
  /** The non-secret start of the secret (`ssk_` and 8 characters), to tell keys apart. */
  prefix: string;
  createdBy: string;
  createdAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
}

export interface CreatedApiKey {
  key: ApiKey;
  /** `ssk_…`: shown this once and never again (only its hash is stored). */
  secret: string;
}

export function toApiKey(r: ApiKeyRow): ApiKey {
  return {
    id: r.id,
    projectId: r.projectId,
    name: r.name,
    role: r.role,
    prefix: r.prefix,
    createdBy: r.createdBy,
    createdAt: r.createdAt.toISOString(),
    lastUsedAt: r.lastUsedAt?.toISOString() ?? null,
    expiresAt: r.expiresAt?.toISOString() ?? null,
    revokedAt: r.revokedAt?.toISOString() ?? null,
  };
}
