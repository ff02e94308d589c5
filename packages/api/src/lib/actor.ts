/**
 * Who is making a call, built once per call by the authed middleware and passed to services
 * that record who did what (audit events, usage rows, created_by columns). A union on `kind`,
 * so other principals can join without services reading transport fields themselves.
 */
export type Actor = UserActor;

export interface UserActor {
  kind: 'user';
  userId: string;
  ip: string;
  requestId: string;
}

export function userActor(userId: string, req: { ip: string; requestId: string }): UserActor {
  return { kind: 'user', userId, ip: req.ip, requestId: req.requestId };
}

/** The actor fields of an audit event. */
export function auditedBy(actor: Actor): { actorId: string; ip: string } {
  return { actorId: actor.userId, ip: actor.ip };
}
