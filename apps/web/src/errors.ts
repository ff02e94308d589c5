import { TRPCClientError } from '@smartspace/client';

/** The server's stable code for an error, e.g. `auth.invalid_credentials`. */
export function appCodeOf(err: unknown): string | null {
  if (err instanceof TRPCClientError) {
    const data = err.data as { appCode?: unknown } | undefined;
    return typeof data?.appCode === 'string' ? data.appCode : null;
  }
  return null;
}

/** Wording for failures a user can act on; the server's own message otherwise. */
const FRIENDLY: Record<string, string> = {
  'balance.insufficient':
    "The project's balance is too low for this model. Top it up or pick a free model.",
  'budget.exceeded':
    "The project's budget for this period is spent. Raise the budget or wait for the next period.",
  'policy.model_not_allowed': "This project's policy does not allow that model. Pick another one.",
  'policy.cost_limit': "This reply would exceed the project's cost limit.",
  'model.unavailable': 'That model is not available on this server.',
  'model.rate_limited': 'The model is rate limited right now. Retry in a moment.',
  'model.overloaded': 'The model is overloaded right now. Retry in a moment.',
  'model.stream_interrupted': 'The connection to the model was cut mid-reply. Retry.',
  'model.failed': 'The model failed to answer. Retry.',
  'reply.cancelled': 'Stopped.',
};

/** Codes for which trying again may help: the UI offers a retry. */
export function isRetryable(appCode: string | null): boolean {
  return Boolean(appCode?.startsWith('model.')) && appCode !== 'model.unavailable';
}

export function describeFailure(appCode: string | null, message: string): string {
  return (appCode && FRIENDLY[appCode]) ?? message;
}

/** A message fit for the screen: never a stack trace. */
export function errorMessage(err: unknown): string {
  if (err instanceof TRPCClientError) {
    const data = err.data as { fieldErrors?: Record<string, string[] | undefined> } | undefined;
    const fields = data?.fieldErrors ? Object.entries(data.fieldErrors) : [];
    const first = fields.find(([, msgs]) => msgs && msgs.length > 0);
    if (first) return `${first[0]}: ${first[1]?.[0]}`;
    return describeFailure(appCodeOf(err), err.message);
  }
  if (err instanceof Error && err.message) return err.message;
  return 'Something went wrong. Try again.';
}
