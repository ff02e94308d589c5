/** The audit log's filters as the form holds them (text), and as `audit.list` takes them. */
export interface AuditFilterText {
  actor: string;
  action: string;
  project: string;
  from: string;
  to: string;
}

export interface AuditFilter {
  actorId?: string;
  action?: string;
  projectId?: string;
  from?: string;
  to?: string;
}

export const EMPTY_FILTER: AuditFilterText = {
  actor: '',
  action: '',
  project: '',
  from: '',
  to: '',
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(text: string): boolean {
  return UUID.test(text.trim());
}

/** A `datetime-local` value (the browser's time zone) as an ISO instant with offset. */
export function localToIso(value: string): string | undefined {
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** The actions the server records (README "Audit log"), offered as suggestions. */
export const AUDIT_ACTIONS = [
  'auth.registered',
  'auth.login_succeeded',
  'auth.login_failed',
  'auth.refresh_reused',
  'auth.password_changed',
  'auth.password_reset',
  'auth.logout_all',
  'users.role_changed',
  'users.deactivated',
  'users.reactivated',
  'projects.created',
  'projects.updated',
  'projects.deleted',
  'projects.member_added',
  'projects.member_role_changed',
  'projects.member_removed',
  'wallets.linked',
  'wallets.unlinked',
  'payments.credited',
  'payments.deposit_credited',
  'payments.deposit_reversed',
  'payments.assigned',
];
