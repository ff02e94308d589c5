/**
 * Application errors: services throw these with a stable dotted code. Each module declares its
 * codes in its own `*.errors.ts`; this file only composes them into the one table through
 * which the tRPC layer maps a code to a transport code and HTTP status.
 */
import { modelErrors, modelFailureCodes } from '../ai/ai.errors';
import { eventsErrors } from '../events/events.errors';
import { agentsErrors } from '../modules/agents/agents.errors';
import { apiKeysErrors } from '../modules/api-keys/api-keys.errors';
import { authErrors } from '../modules/auth/auth.errors';
import { billingErrors } from '../modules/billing/billing.errors';
import { budgetsErrors } from '../modules/budgets/budgets.errors';
import { chatErrors, replyFailureCodes } from '../modules/chat/chat.errors';
import { filesErrors } from '../modules/files/files.errors';
import { helpErrors } from '../modules/help/help.errors';
import { mcpErrors } from '../modules/mcp/mcp.errors';
import { paymentsErrors } from '../modules/payments/payments.errors';
import { walletsErrors } from '../modules/payments/wallets.errors';
import { policiesErrors } from '../modules/policies/policies.errors';
import { projectsErrors } from '../modules/projects/projects.errors';
import { runFailureCodes, runsErrors } from '../modules/runs/runs.errors';
import { usersErrors } from '../modules/users/users.errors';
import { realtimeErrors } from '../realtime/realtime.errors';
import { requestErrors } from './request.errors';

export { genericAppCodes } from './request.errors';

/** Every module's table. A code belongs to exactly one: the check below refuses a repeat. */
export const errorTables = [
  authErrors,
  usersErrors,
  projectsErrors,
  apiKeysErrors,
  eventsErrors,
  realtimeErrors,
  chatErrors,
  modelErrors,
  policiesErrors,
  budgetsErrors,
  billingErrors,
  agentsErrors,
  runsErrors,
  mcpErrors,
  walletsErrors,
  paymentsErrors,
  filesErrors,
  helpErrors,
  requestErrors,
] as const;

type Merged<T extends readonly object[]> = T extends readonly [
  infer Head,
  ...infer Rest extends readonly object[],
]
  ? Head & Merged<Rest>
  : unknown;

/** Codes declared by more than one table; spreading would keep only the last silently. */
type Repeated<T extends readonly object[]> = T extends readonly [
  infer Head,
  ...infer Rest extends readonly object[],
]
  ? (keyof Head & keyof Merged<Rest>) | Repeated<Rest>
  : never;

// Fails to compile naming any code that two tables declare.
const _eachCodeOnce: Record<Repeated<typeof errorTables>, never> = {};

const appErrorTable = Object.assign({}, ...errorTables) as Merged<typeof errorTables>;

export type AppErrorCode = keyof typeof appErrorTable;

/** The one table: app code -> tRPC code. */
export const appErrorCodes = Object.fromEntries(
  Object.entries(appErrorTable).map(([code, { transport }]) => [code, transport]),
) as { readonly [C in AppErrorCode]: (typeof appErrorTable)[C]['transport'] };

export type TransportCode = (typeof appErrorCodes)[AppErrorCode];

/**
 * Codes a background job (a run, a reply) fails with that are no tRPC errors; clients read
 * them, like app error codes, as the appCode of reply.failed, run.failed and Run.error.
 */
export const failureCodes = [...runFailureCodes, ...replyFailureCodes, ...modelFailureCodes];

export class AppError extends Error {
  override name = 'AppError';
  constructor(
    readonly code: AppErrorCode,
    message: string,
    readonly meta?: Record<string, unknown>,
  ) {
    super(message);
  }
}
