import type { ErrorTable } from '../../lib/error-table';

/** Conversations and the replies streamed into them. */
export const chatErrors = {
  'chat.conversation_not_found': { transport: 'NOT_FOUND' },
  'chat.reply_not_found': { transport: 'NOT_FOUND' },
  'chat.reply_in_progress': { transport: 'CONFLICT' },
  'chat.unknown_model': { transport: 'BAD_REQUEST' },
  'chat.message_not_found': { transport: 'NOT_FOUND' },
  /** Only user messages can be edited; replies are regenerated instead. */
  'chat.message_not_editable': { transport: 'BAD_REQUEST' },
  /** The last message is not a finished reply (the conversation is empty, or ends with a question). */
  'chat.nothing_to_regenerate': { transport: 'CONFLICT' },
  /** Editing is for the message's author, or a project admin. */
  'chat.not_author': { transport: 'FORBIDDEN' },
  /** Deleting is for the conversation's creator, or a project admin. */
  'chat.not_creator': { transport: 'FORBIDDEN' },
  /** A conversation with an agent replies with the agent's model: no other may be asked for. */
  'chat.agent_conversation': { transport: 'BAD_REQUEST' },
} as const satisfies ErrorTable<`chat.${string}`>;

/**
 * The codes a reply fails with on its own account, seen in reply.failed and a failed message's
 * errorCode; errors from the gateway keep theirs.
 */
export const replyFailureCodes = ['reply.cancelled', 'reply.interrupted', 'reply.failed'] as const;

export type ReplyFailureCode = (typeof replyFailureCodes)[number];
