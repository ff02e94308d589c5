import { type Context, createContextInner, type Deps, type RequestMeta } from './context';
import { AppError } from './lib/errors';
import { verifyAccessToken } from './modules/auth/tokens';
import type { ConnectionRegistry, SocketLike } from './realtime/connections';

/** See `Api.createSocketContext`. */
export async function createSocketContext(
  opts: { deps: Deps; connections: ConnectionRegistry },
  req: RequestMeta,
  socket: SocketLike,
): Promise<Context> {
  const { deps, connections } = opts;
  // Signature and claims only (no database): registering before the session check means
  // a session that ends right now still reaches this socket through the registry.
  const claims = req.token ? await verifyAccessToken(deps.config.jwt, req.token) : null;
  const connection = connections.add({
    socket,
    ip: req.ip,
    userId: claims?.userId ?? null,
    sessionId: claims?.sessionId ?? null,
    expiresAt: claims?.expiresAt ?? null,
  });
  // The registry closed it (4008), or it closed while its token was being verified.
  if (!connection) {
    throw new AppError('realtime.too_many_connections', 'Too many open connections for this user');
  }
  return createContextInner(deps, req, connection);
}
