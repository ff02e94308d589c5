import { useEffect, useReducer, useRef, useState } from 'react';
import { appCodeOf, errorMessage } from '../errors';
import { client, endSession } from '../trpc';
import {
  applyEvent,
  type ChatState,
  clearProgress,
  emptyState,
  loadProgress,
  resumePoint,
  saveProgress,
} from './state';
import type { ChatEvent, Message, TrackedChatEvent } from './types';

type Action =
  | { type: 'reset'; state: ChatState }
  | { type: 'event'; id: string; event: ChatEvent; conversationId: string };

function reducer(state: ChatState, action: Action): ChatState {
  if (action.type === 'reset') return action.state;
  return applyEvent(state, action.id, action.event, action.conversationId);
}

/** Project chats and help chats: the same messages and events, different procedures. */
export type ConversationKind = 'chat' | 'help';

function listPage(kind: ConversationKind, conversationId: string, cursor: string | undefined) {
  const input = { conversationId, cursor, limit: 100 };
  return kind === 'chat'
    ? client.chat.messages.list.query(input)
    : client.help.messages.query(input);
}

interface Handlers {
  onData(event: TrackedChatEvent): void;
  onError(err: unknown): void;
}

function subscribe(
  kind: ConversationKind,
  input: { conversationId: string; lastEventId: string | null },
  handlers: Handlers,
): { unsubscribe(): void } {
  const opts = { onData: handlers.onData, onError: handlers.onError };
  return kind === 'chat'
    ? client.chat.onEvent.subscribe(input, opts)
    : client.help.onEvent.subscribe(input, opts);
}

function isUnauthorized(err: unknown): boolean {
  return (err as { data?: { code?: string } } | null)?.data?.code === 'UNAUTHORIZED';
}

async function loadMessages(kind: ConversationKind, conversationId: string): Promise<Message[]> {
  const all: Message[] = [];
  let cursor: string | undefined;
  do {
    const page = await listPage(kind, conversationId, cursor);
    all.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return all;
}

/**
 * A conversation's messages, kept live by chat.onEvent. Loads the stored messages, then
 * subscribes from the resume point (see `resumePoint`); the client's socket resumes after the
 * last event by itself on reconnects, and the saved progress covers reloads.
 */
export function useConversation(conversationId: string, kind: ConversationKind = 'chat') {
  const [state, dispatch] = useReducer(reducer, emptyState);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // Bumped to start over: after events expired, nothing but a fresh load is consistent, and
  // the replay cannot reach back: from then on, live events only.
  const [generation, setGeneration] = useState(0);
  const liveOnly = useRef(false);

  // biome-ignore lint/correctness/useExhaustiveDependencies: generation restarts the load on purpose
  useEffect(() => {
    let cancelled = false;
    let subscription: { unsubscribe(): void } | null = null;
    setLoaded(false);
    setError(null);
    dispatch({ type: 'reset', state: emptyState });
    loadMessages(kind, conversationId).then(
      (messages) => {
        if (cancelled) return;
        const start = resumePoint(messages, loadProgress(conversationId), liveOnly.current);
        dispatch({ type: 'reset', state: { ...emptyState, messages, ...start } });
        setLoaded(true);
        subscription = subscribe(
          kind,
          { conversationId, lastEventId: start.lastEventId },
          {
            onData: ({ id, data }) => dispatch({ type: 'event', id, event: data, conversationId }),
            onError: (err) => {
              const code = appCodeOf(err);
              if (code === 'events.expired' && !liveOnly.current) {
                clearProgress(conversationId);
                liveOnly.current = true;
                setGeneration((g) => g + 1);
              } else if (isUnauthorized(err)) {
                endSession();
              } else {
                setError(errorMessage(err));
              }
            },
          },
        );
      },
      (err: unknown) => {
        if (!cancelled) setError(errorMessage(err));
      },
    );
    return () => {
      cancelled = true;
      subscription?.unsubscribe();
    };
  }, [conversationId, kind, generation]);

  useEffect(() => {
    if (loaded) saveProgress(conversationId, state);
  }, [conversationId, loaded, state]);

  return { state, loaded, error };
}
