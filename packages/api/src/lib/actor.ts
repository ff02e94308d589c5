/**
 * Who is making a call, built once per call by the authed middleware and passed to services
 * that record who did what (audit events, usage rows, created_by columns). A union on `kind`,
 * so services never read transport fields themselves.
 */
export type Actor = UserActor | KeyActor;

export interface UserActor {
  kind: 'user';
  userId: string;
  ip: string;
  requestId: string;
}

/** A project API key. It acts for its creator (`userId`), so rows that name a person still do. */
export interface KeyActor {
  kind: 'key';
  keyId: string;
  userId: string;
  ip: string;
  requestId: string;
}

export function userActor(userId: string, req: { ip: string; requestId: string }): UserActor {
  return { kind: 'user', userId, ip: req.ip, requestId: req.requestId };
}

export function keyActor(
  keyId: string,
  userId: string,
  req: { ip: string; requestId: string },
): KeyActor {
  return { kind: 'key', keyId, userId, ip: req.ip, requestId: req.requestId };
}

/** The key an actor used, or null for a person. */
export function actorKeyId(actor: Actor): string | null {
  return actor.kind === 'key' ? actor.keyId : null;
}

/** The actor fields of an audit event. */
export function auditedBy(actor: Actor): {
  actorId: string;
  actorKeyId: string | null;
  ip: string;
} {
  return { actorId: actor.userId, actorKeyId: actorKeyId(actor), ip: actor.ip };
}
