import type { ErrorTable } from '../../lib/error-table';

/** Conversations and the replies streamed into them. */
export const chatErrors = {
  'chat.conversation_not_found': { transport: 'NOT_FOUND' },
  'chat.reply_not_found': { transport: 'NOT_FOUND' },
  'chat.reply_in_progress': { transport: 'CONFLICT' },
  'chat.unknown_model': { transport: 'BAD_REQUEST' },
} as const satisfies ErrorTable<`chat.${string}`>;

/**
 * The codes a reply fails with on its own account, seen in reply.failed and a failed message's
 * errorCode; errors from the gateway keep theirs.
 */
export const replyFailureCodes = ['reply.cancelled', 'reply.interrupted', 'reply.failed'] as const;

export type ReplyFailureCode = (typeof replyFailureCodes)[number];
