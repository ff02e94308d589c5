import { authenticateKey, isApiKey, roleAtLeast, type User } from '@smartspace/api';
import type { FastifyRequest } from 'fastify';
import type { Deps } from './deps';
import { CompatError } from './errors';

export interface KeyPrincipal {
  user: User;
  keyId: string;
  projectId: string;
  role: 'viewer' | 'member' | 'admin' | 'owner';
}

/** `x-api-key` (what the Anthropic SDK sends) or `Authorization: Bearer` (OpenAI's). */
function presentedSecret(headers: Record<string, string | string[] | undefined>): string | null {
  const header = headers['x-api-key'];
  if (typeof header === 'string' && header.length > 0) return header.trim();
  const auth = headers.authorization;
  if (typeof auth !== 'string') return null;
  return /^Bearer\s+(\S+)$/i.exec(auth)?.[1] ?? null;
}

/**
 * Only project API keys: these endpoints are for programs, and a key names its project, so
 * no request field has to. Session tokens are refused, as a key the server does not know.
 */
export async function authenticate(
  deps: Deps,
  req: FastifyRequest,
  minRole: 'viewer' | 'member',
): Promise<KeyPrincipal> {
  const secret = presentedSecret(req.headers);
  if (!secret) {
    throw new CompatError(
      401,
      'authentication_error',
      'auth.unauthenticated',
      'Send a SmartSpace project API key (ssk_…) in x-api-key or Authorization: Bearer',
    );
  }
  if (!isApiKey(secret)) {
    throw new CompatError(
      401,
      'authentication_error',
      'auth.unauthenticated',
      'Only project API keys (ssk_…) are accepted here, not session tokens',
    );
  }
  const auth = await authenticateKey(deps.db, secret);
  if (!auth.ok) {
    const message =
      auth.code === 'auth.unauthenticated' ? 'This API key is not valid' : auth.message;
    throw new CompatError(401, 'authentication_error', auth.code, message);
  }
  if (!roleAtLeast(auth.key.role, minRole)) {
    throw new CompatError(
      403,
      'permission_error',
      'auth.forbidden',
      `This API key has the ${auth.key.role} role; calling models needs at least ${minRole}`,
    );
  }
  void deps.keyUsage.touch(auth.key.keyId);
  // For the request's log line.
  req.trail.userId = auth.user.id;
  req.trail.keyId = auth.key.keyId;
  req.trail.projectId = auth.key.projectId;
  return {
    user: auth.user,
    keyId: auth.key.keyId,
    projectId: auth.key.projectId,
    role: auth.key.role,
  };
}
