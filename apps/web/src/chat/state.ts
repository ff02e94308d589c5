import type { ChatEvent, Conversation, Message } from './types';

/** A step of the run writing a reply in a conversation with an agent (reply.progress). */
export type AgentStep = Extract<ChatEvent, { type: 'reply.progress' }>['event'];

/** What a reply's run did so far, as the page shows it under the reply. */
export interface ReplySteps {
  runId: string;
  steps: AgentStep[];
}

/**
 * A conversation as the page shows it: the stored messages, the text streamed so far for
 * replies still running, and the id of the last event applied. Every event is applied at most
 * once (ids only grow), so replaying from an older id after a reload or a reconnect neither
 * loses nor repeats text.
 */
export interface ChatState {
  messages: Message[];
  /** Streamed text of running replies, by reply (message) id. */
  drafts: Record<string, string>;
  /** Conversations with an agent: each reply's run steps, by reply id. */
  steps: Record<string, ReplySteps>;
  lastEventId: string | null;
  /** Set when another tab or member changed the conversation itself. */
  conversation: Conversation | null;
  deleted: boolean;
}

export const emptyState: ChatState = {
  messages: [],
  drafts: {},
  steps: {},
  lastEventId: null,
  conversation: null,
  deleted: false,
};

/** Steps worth a line under the reply (not the bookkeeping ones). */
const SHOWN = new Set<AgentStep['type']>([
  'tool.called',
  'tool.result',
  'handoff',
  'approval.requested',
  'approval.decided',
]);

/** Approvals the reply's run asked for that nobody decided yet (as far as events tell). */
export function pendingApprovals(steps: ReplySteps | undefined) {
  if (!steps) return [];
  const decided = new Set(
    steps.steps.flatMap((s) => (s.type === 'approval.decided' ? [s.approvalId] : [])),
  );
  return steps.steps.flatMap((s) =>
    s.type === 'approval.requested' && !decided.has(s.approvalId) ? [s] : [],
  );
}

/** Event ids are decimal integers; compare them as numbers, not as text. */
export function isAfter(id: string, last: string | null): boolean {
  return last === null || BigInt(id) > BigInt(last);
}

function upsert(messages: Message[], message: Message): Message[] {
  const i = messages.findIndex((m) => m.id === message.id);
  if (i === -1) return [...messages, message];
  const next = messages.slice();
  next[i] = message;
  return next;
}

function without<T>(record: Record<string, T>, key: string): Record<string, T> {
  if (!(key in record)) return record;
  const { [key]: _gone, ...rest } = record;
  return rest;
}

/** A placeholder for a reply whose stored row the page has not loaded. */
function streamingReply(replyId: string, conversationId: string): Message {
  return {
    id: replyId,
    conversationId,
    role: 'assistant',
    content: '',
    authorId: null,
    model: null,
    status: 'streaming',
    usage: null,
    citations: [],
    attachments: [],
    errorCode: null,
    createdAt: new Date().toISOString(),
    completedAt: null,
    editedAt: null,
  };
}

export function applyEvent(
  state: ChatState,
  id: string,
  event: ChatEvent,
  conversationId: string,
): ChatState {
  if (!isAfter(id, state.lastEventId)) return state;
  const next = { ...state, lastEventId: id };
  switch (event.type) {
    case 'message.created':
    case 'message.updated':
      return { ...next, messages: upsert(state.messages, event.message) };
    case 'message.deleted':
      return {
        ...next,
        messages: state.messages.filter((m) => m.id !== event.messageId),
        drafts: without(state.drafts, event.messageId),
      };
    case 'messages.truncated': {
      const gone = new Set(event.messageIds);
      let drafts = state.drafts;
      for (const g of gone) drafts = without(drafts, g);
      return { ...next, messages: state.messages.filter((m) => !gone.has(m.id)), drafts };
    }
    case 'conversation.updated':
      return { ...next, conversation: event.conversation };
    case 'conversation.deleted':
      return { ...next, deleted: true };
    case 'reply.started': {
      const reply = state.messages.find((m) => m.id === event.replyId);
      if (reply && reply.status !== 'streaming') return next;
      const known = reply !== undefined;
      return {
        ...next,
        messages: known
          ? state.messages
          : [...state.messages, streamingReply(event.replyId, conversationId)],
        drafts: { ...state.drafts, [event.replyId]: state.drafts[event.replyId] ?? '' },
      };
    }
    case 'reply.delta': {
      // A replay may carry deltas of replies already finished in the loaded history.
      const reply = state.messages.find((m) => m.id === event.replyId);
      if (reply && reply.status !== 'streaming') return next;
      const known = reply !== undefined;
      return {
        ...next,
        messages: known
          ? state.messages
          : [...state.messages, streamingReply(event.replyId, conversationId)],
        drafts: {
          ...state.drafts,
          [event.replyId]: (state.drafts[event.replyId] ?? '') + event.text,
        },
      };
    }
    case 'reply.progress': {
      if (!SHOWN.has(event.event.type)) return next;
      const seen = state.steps[event.replyId];
      return {
        ...next,
        steps: {
          ...state.steps,
          [event.replyId]: { runId: event.runId, steps: [...(seen?.steps ?? []), event.event] },
        },
      };
    }
    case 'reply.completed':
      return {
        ...next,
        messages: upsert(state.messages, event.message),
        drafts: without(state.drafts, event.message.id),
      };
    case 'reply.failed': {
      const status = event.appCode === 'reply.cancelled' ? 'cancelled' : 'failed';
      return {
        ...next,
        messages: state.messages.map((m) =>
          m.id === event.replyId
            ? {
                ...m,
                status,
                errorCode: event.appCode,
                // Keep what was streamed before the reply stopped.
                content: m.content || (state.drafts[m.id] ?? ''),
              }
            : m,
        ),
        drafts: without(state.drafts, event.replyId),
      };
    }
    default:
      return next;
  }
}

/** The text to show for a message: the streamed draft while it runs. */
export function displayText(state: ChatState, m: Message): string {
  return state.drafts[m.id] ?? m.content;
}

/** The reply streaming now, if any (one at a time per conversation). */
export function runningReply(state: ChatState): Message | undefined {
  return state.messages.find((m) => m.role === 'assistant' && m.status === 'streaming');
}

interface Persisted {
  lastEventId: string;
  drafts: Record<string, string>;
  steps?: Record<string, ReplySteps>;
}

const key = (conversationId: string) => `smartspace.chat.${conversationId}`;

/**
 * The last event id and the drafts it produced, saved together per conversation in this tab,
 * so a reload resumes exactly after the last applied event.
 */
export function saveProgress(conversationId: string, state: ChatState): void {
  if (state.lastEventId === null) return;
  const value: Persisted = {
    lastEventId: state.lastEventId,
    drafts: state.drafts,
    steps: state.steps,
  };
  try {
    sessionStorage.setItem(key(conversationId), JSON.stringify(value));
  } catch {
    // Storage full or denied: a reload then replays the running reply from the start.
  }
}

export function clearProgress(conversationId: string): void {
  sessionStorage.removeItem(key(conversationId));
}

export function loadProgress(conversationId: string): Persisted | null {
  try {
    const raw = sessionStorage.getItem(key(conversationId));
    return raw ? (JSON.parse(raw) as Persisted) : null;
  } catch {
    return null;
  }
}

/**
 * Where to resume after loading the stored messages. The saved id, when this tab saved one and
 * it covers the running reply (whose stored text is empty until it ends). Otherwise the start
 * of the conversation's retained events ("0"): a subscription without an id only sees events
 * published after it started, and anything sent between the load and that moment would be
 * lost. Replayed events are idempotent here (`applyEvent`), and deltas of finished replies are
 * ignored. `liveOnly` (after events expired) subscribes without an id.
 */
export function resumePoint(
  messages: Message[],
  saved: Persisted | null,
  liveOnly = false,
): {
  lastEventId: string | null;
  drafts: Record<string, string>;
  steps: Record<string, ReplySteps>;
} {
  const running = messages.find((m) => m.role === 'assistant' && m.status === 'streaming');
  if (liveOnly) {
    return { lastEventId: null, drafts: running ? { [running.id]: '' } : {}, steps: {} };
  }
  if (saved && (!running || running.id in saved.drafts)) {
    // Steps of replies still on the page: a reload keeps showing what their runs did.
    const ids = new Set(messages.map((m) => m.id));
    const steps = Object.fromEntries(
      Object.entries(saved.steps ?? {}).filter(([replyId]) => ids.has(replyId)),
    );
    return {
      lastEventId: saved.lastEventId,
      drafts: running ? { [running.id]: saved.drafts[running.id] ?? '' } : {},
      steps,
    };
  }
  return { lastEventId: '0', drafts: running ? { [running.id]: '' } : {}, steps: {} };
}
