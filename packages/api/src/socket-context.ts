import { type Context, createContextInner, type Deps, type RequestMeta } from './context';
import { AppError } from './lib/errors';
import { authenticateKey, isApiKey, keyCredentialId } from './modules/api-keys/api-keys.service';
import { verifyAccessToken } from './modules/auth/tokens';
import type { ConnectionRegistry, SocketLike } from './realtime/connections';

interface SocketCredential {
  /** Whose connection caps the socket counts against: a user id, or the key's credential id. */
  principalId: string;
  /** What ends it: the session id, or the key's credential id (revocation NOTIFYs it). */
  credentialId: string;
  expiresAt: Date | null;
}

/**
 * Access tokens are checked by signature and claims only (no database): registering before
 * the session check means a session that ends right now still reaches this socket through the
 * registry. A key needs its look-up; one revoked between the look-up and the registration
 * leaves a socket on which every call fails, since socket calls re-check their credential.
 */
async function socketCredential(deps: Deps, token: string): Promise<SocketCredential | null> {
  if (isApiKey(token)) {
    const auth = await authenticateKey(deps.db, token);
    if (!auth.ok) return null;
    const id = keyCredentialId(auth.key.keyId);
    return { principalId: id, credentialId: id, expiresAt: auth.key.expiresAt };
  }
  const claims = await verifyAccessToken(deps.config.jwt, token);
  return claims
    ? { principalId: claims.userId, credentialId: claims.sessionId, expiresAt: claims.expiresAt }
    : null;
}

/** See `Api.createSocketContext`. */
export async function createSocketContext(
  opts: { deps: Deps; connections: ConnectionRegistry },
  req: RequestMeta,
  socket: SocketLike,
): Promise<Context> {
  const { deps, connections } = opts;
  const credential = req.token ? await socketCredential(deps, req.token) : null;
  const connection = connections.add({
    socket,
    ip: req.ip,
    userId: credential?.principalId ?? null,
    sessionId: credential?.credentialId ?? null,
    expiresAt: credential?.expiresAt ?? null,
  });
  // The registry closed it (4008), or it closed while its token was being verified.
  if (!connection) {
    throw new AppError('realtime.too_many_connections', 'Too many open connections for this user');
  }
  // Flat: a randomUUID() request id is a rope of ~20 strings, held as long as the socket.
  return createContextInner(deps, { ...req, requestId: flat(req.requestId) }, connection);
}

/** `s` as one flat string (charCodeAt flattens a concatenation in place). */
function flat(s: string): string {
  s.charCodeAt(0);
  return s;
}
