import { z } from 'zod';
import { listInput } from '../../lib/pagination';
import { liveTopic } from '../../realtime/subscriptions';
import { projectProcedure, resourceProcedure, router } from '../../trpc';
import { type ChatEvent, conversationTopic } from './chat.dto';
import * as chat from './chat.service';

const conversationInput = z.object({ conversationId: z.uuid() });
const inConversation = (minRole: 'viewer' | 'member') =>
  resourceProcedure(minRole, {
    input: conversationInput,
    notFound: 'chat.conversation_not_found',
    resolve: ({ db, input }) => chat.projectOfConversation(db, input.conversationId),
  });

const conversationsRouter = router({
  create: projectProcedure('member')
    .input(
      z.object({
        title: z.string().trim().min(1).max(200).optional(),
        grounded: z.boolean().optional(),
        systemPrompt: z.string().max(20_000).optional(),
        model: z.string().min(1).max(100).optional(),
      }),
    )
    .mutation(({ ctx, input }) =>
      chat.createConversation({
        db: ctx.db,
        models: ctx.models,
        projectId: ctx.membership.projectId,
        actor: ctx.actor,
        title: input.title,
        grounded: input.grounded,
        systemPrompt: input.systemPrompt,
        model: input.model,
      }),
    ),
  list: projectProcedure('viewer')
    .input(listInput)
    .query(({ ctx, input }) =>
      chat.listConversations({
        db: ctx.db,
        projectId: ctx.membership.projectId,
        cursor: input.cursor,
        limit: input.limit,
      }),
    ),
});

const messagesRouter = router({
  list: inConversation('viewer')
    .input(listInput)
    .query(({ ctx, input }) => chat.listMessages({ db: ctx.db, ...input })),
});

export const chatRouter = router({
  conversations: conversationsRouter,
  messages: messagesRouter,

  send: inConversation('member')
    .input(
      z.object({
        content: z.string().trim().min(1).max(100_000),
        model: z.string().min(1).max(100).optional(),
      }),
    )
    .mutation(({ ctx, input }) =>
      chat.sendMessage({
        db: ctx.db,
        bus: ctx.bus,
        models: ctx.models,
        replies: ctx.replies,
        conversationId: input.conversationId,
        actor: ctx.actor,
        content: input.content,
        model: input.model,
      }),
    ),

  cancel: resourceProcedure('member', {
    input: z.object({ replyId: z.uuid() }),
    notFound: 'chat.reply_not_found',
    resolve: ({ db, input }) => chat.projectOfReply(db, input.replyId),
  }).mutation(async ({ ctx, input }) => {
    await ctx.replies.cancel(input.replyId);
    return { ok: true as const };
  }),

  onEvent: inConversation('viewer')
    .input(z.object({ lastEventId: z.string().max(20).nullish() }))
    .subscription(({ ctx, input, signal }) =>
      liveTopic({
        ctx,
        minRole: 'viewer',
        topic: conversationTopic(input.conversationId),
        lastEventId: input.lastEventId,
        signal,
        map: (e) => ({ type: e.type, ...e.payload }) as ChatEvent,
      }),
    ),
});
