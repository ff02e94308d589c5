import { z } from 'zod';
import { streamTopic } from '../../events/stream';
import { listInput } from '../../lib/pagination';
import { withSubscriptionSlot } from '../../realtime/subscriptions';
import { authedProcedure, router } from '../../trpc';
import { type ChatEvent, conversationTopic } from '../chat/chat.dto';
import * as chat from '../chat/chat.service';
import * as help from './help.service';

/**
 * Any signed-in person (never a project API key: keys belong to a project) may use help, but
 * only in conversations they started: anyone else's answers NOT_FOUND, as one that does not
 * exist. The whole input is parsed before that lookup, so bad input is refused as such
 * whatever the conversation.
 */
function inOwnConversation<T extends z.ZodRawShape>(rest: T) {
  return authedProcedure
    .input(z.object({ conversationId: z.uuid(), ...rest }))
    .use(async ({ ctx, input, next }) => {
      const { conversationId } = input as { conversationId: string };
      await help.requireOwnConversation(ctx.db, ctx.user.id, conversationId);
      return next();
    });
}

const conversationsRouter = router({
  create: authedProcedure
    .meta({ description: 'Starts a help conversation; its replies cite the documentation.' })
    .input(z.object({ title: z.string().trim().min(1).max(200).optional() }).optional())
    .mutation(({ ctx, input }) =>
      help.createHelpConversation({
        db: ctx.db,
        models: ctx.models,
        actor: ctx.actor,
        title: input?.title,
      }),
    ),
  list: authedProcedure
    .meta({ description: "The caller's own help conversations, newest first." })
    .input(listInput)
    .query(({ ctx, input }) =>
      help.listHelpConversations({
        db: ctx.db,
        userId: ctx.user.id,
        cursor: input.cursor,
        limit: input.limit,
      }),
    ),
});

export const helpRouter = router({
  conversations: conversationsRouter,

  messages: inOwnConversation(listInput.shape)
    .meta({ description: 'Messages of one of your help conversations, oldest first.' })
    .query(({ ctx, input }) => chat.listMessages({ db: ctx.db, ...input })),

  send: inOwnConversation({ content: z.string().trim().min(1).max(20_000) })
    .meta({
      description:
        'Asks a question; the reply streams on help.onEvent. Limited per person per hour (rate_limited with retryAfterMs) and by the platform help budget (the reply fails with budget.exceeded).',
    })
    .mutation(({ ctx, input }) =>
      help.sendHelpMessage({
        db: ctx.db,
        bus: ctx.bus,
        models: ctx.models,
        replies: ctx.replies,
        limiter: ctx.sharedLimiter,
        settings: ctx.config.help,
        actor: ctx.actor,
        conversationId: input.conversationId,
        content: input.content,
      }),
    ),

  cancel: authedProcedure
    .meta({ description: 'Stops one of your help replies while it streams.' })
    .input(z.object({ replyId: z.uuid() }))
    .mutation(async ({ ctx, input }) => {
      await help.requireOwnReply(ctx.db, ctx.user.id, input.replyId);
      await ctx.replies.cancel(input.replyId);
      return { ok: true as const };
    }),

  onEvent: inOwnConversation({ lastEventId: z.string().max(20).nullish() })
    .meta({ description: 'Events of one of your help conversations (the chat.onEvent shape).' })
    .subscription(({ ctx, input, signal }) =>
      // Not liveTopic: that ends a stream once its caller is no project member, and nobody
      // is a member of the help project. Ownership of a conversation never changes, so the
      // check above holds for the subscription's life; the socket registry still ends it
      // with the session.
      withSubscriptionSlot(
        ctx.connection,
        streamTopic({
          bus: ctx.bus,
          topic: conversationTopic(input.conversationId),
          lastEventId: input.lastEventId,
          signal,
          map: (e) => ({ type: e.type, ...e.payload }) as ChatEvent,
        }),
      ),
    ),
});
