import type { ErrorTable } from '../../lib/error-table';

/** The in-app help chat. */
export const helpErrors = {
  'help.conversation_not_found': { transport: 'NOT_FOUND' },
  'help.reply_not_found': { transport: 'NOT_FOUND' },
  'help.disabled': { transport: 'PRECONDITION_FAILED' },
} as const satisfies ErrorTable<`help.${string}`>;
