import { sql } from 'drizzle-orm';
import { z } from 'zod';
import { listInput } from '../../lib/pagination';
import { liveTopic } from '../../realtime/subscriptions';
import { projectProcedure, resourceProcedure, router } from '../../trpc';
import { ownedBy, type ResourceOwner } from '../auth/auth.service';
import { type ChatEvent, conversationTopic } from './chat.dto';
import * as chat from './chat.service';
import { conversations, messages } from './chat.table';

/** A message belongs to its conversation's project. */
const messageOwner: ResourceOwner = {
  name: 'message',
  project: (id) =>
    sql`(select ${conversations.projectId} from ${messages} join ${conversations} on ${conversations.id} = ${messages.conversationId} where ${messages.id} = ${id})`,
};

/** A reply is an assistant message. */
const replyOwner: ResourceOwner = {
  name: 'reply',
  project: (id) =>
    sql`(select ${conversations.projectId} from ${messages} join ${conversations} on ${conversations.id} = ${messages.conversationId} where ${messages.id} = ${id} and ${messages.role} = 'assistant')`,
};

const conversationInput = z.object({ conversationId: z.uuid() });
const inConversation = (minRole: 'viewer' | 'member') =>
  resourceProcedure(minRole, {
    input: conversationInput,
    notFound: 'chat.conversation_not_found',
    id: 'conversationId',
    owner: ownedBy('conversation', conversations, conversations.id, conversations.projectId),
  });

const modelInput = z.string().min(1).max(100);
/** Files attached to a message: ids of files uploaded to the conversation's project. */
const MAX_ATTACHMENTS = 10;

const conversationsRouter = router({
  create: projectProcedure('member')
    .input(
      z.object({
        title: z.string().trim().min(1).max(200).optional(),
        grounded: z.boolean().optional(),
        systemPrompt: z.string().max(20_000).optional(),
        model: modelInput.optional(),
        agentId: z
          .uuid()
          .optional()
          .describe(
            "Talk to an agent of the project: each reply is a run of it, with the agent's " +
              'instructions, model, tools, handoffs and approvals; its steps arrive as reply.progress',
          ),
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
        agentId: input.agentId,
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
  get: inConversation('viewer')
    .meta({ description: 'One conversation: its title, model, system prompt and grounding.' })
    .query(({ ctx, input }) => chat.getConversation(ctx.db, input.conversationId)),
  update: inConversation('member')
    .meta({
      description:
        'Changes the fields given, from the next reply on; null clears title, systemPrompt, ' +
        'or model (back to the default). Subscribers get conversation.updated.',
    })
    .input(
      z.object({
        title: z.string().trim().min(1).max(200).nullable().optional(),
        grounded: z.boolean().optional(),
        systemPrompt: z.string().max(20_000).nullable().optional(),
        model: modelInput.nullable().optional(),
      }),
    )
    .mutation(({ ctx, input }) =>
      chat.updateConversation({ db: ctx.db, bus: ctx.bus, models: ctx.models, ...input }),
    ),
  delete: inConversation('member')
    .meta({
      description:
        "Deletes the conversation and all its messages for good; for the conversation's " +
        'creator or a project admin. A reply streaming in it is cancelled. Subscribers get ' +
        'conversation.deleted.',
    })
    .mutation(({ ctx, input }) =>
      chat.deleteConversation({
        db: ctx.db,
        bus: ctx.bus,
        replies: ctx.replies,
        conversationId: input.conversationId,
        actor: ctx.actor,
        role: ctx.membership.role,
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
    .meta({
      description:
        'Stores a question and starts its reply in the background; returns before the reply ' +
        'ends (follow it with onEvent). fileIds attach files of the same project: their text ' +
        'grounds the reply even in an ungrounded conversation. One reply at a time.',
    })
    .input(
      z.object({
        content: z.string().trim().min(1).max(100_000),
        model: modelInput.optional(),
        fileIds: z.array(z.uuid()).max(MAX_ATTACHMENTS).optional(),
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
        fileIds: input.fileIds,
      }),
    ),

  regenerate: inConversation('member')
    .meta({
      description:
        "Replaces the conversation's last reply (finished, failed or cancelled) with a new " +
        'one to the same question. Subscribers get message.deleted for the old reply, then ' +
        'the new reply events.',
    })
    .input(z.object({ model: modelInput.optional() }))
    .mutation(({ ctx, input }) =>
      chat.regenerateReply({
        db: ctx.db,
        bus: ctx.bus,
        models: ctx.models,
        replies: ctx.replies,
        conversationId: input.conversationId,
        actor: ctx.actor,
        model: input.model,
      }),
    ),

  edit: resourceProcedure('member', {
    input: z.object({ messageId: z.uuid() }),
    notFound: 'chat.message_not_found',
    id: 'messageId',
    owner: messageOwner,
  })
    .meta({
      description:
        "Rewrites one of the user's questions (its author or a project admin) and answers it " +
        'again. Every message after it is deleted: history is discarded, not branched. ' +
        'Subscribers get message.updated, messages.truncated, then the new reply events. ' +
        'Refused while a reply streams.',
    })
    .input(
      z.object({
        content: z.string().trim().min(1).max(100_000),
        model: modelInput.optional(),
      }),
    )
    .mutation(({ ctx, input }) =>
      chat.editMessage({
        db: ctx.db,
        bus: ctx.bus,
        models: ctx.models,
        replies: ctx.replies,
        messageId: input.messageId,
        actor: ctx.actor,
        role: ctx.membership.role,
        content: input.content,
        model: input.model,
      }),
    ),

  cancel: resourceProcedure('member', {
    input: z.object({ replyId: z.uuid() }),
    notFound: 'chat.reply_not_found',
    id: 'replyId',
    owner: replyOwner,
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
