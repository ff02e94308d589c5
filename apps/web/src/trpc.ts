import type { AppRouter } from '@smartspace/client';
import { createClient } from '@smartspace/client';
import { QueryClient } from '@tanstack/react-query';
import { createTRPCContext } from '@trpc/tanstack-react-query';
import { markSessionEnded, sessionStore } from './session';

export const SESSION_ENDED_MESSAGE = 'Your session ended. Sign in again.';

/** Set by the app shell: where to go when the server ends the session. */
let onEnded: () => void = () => {};
export function setSessionEndedHandler(handler: () => void): void {
  onEnded = handler;
}

export function endSession(message = SESSION_ENDED_MESSAGE): void {
  if (!sessionStore.current()) return;
  markSessionEnded(message);
  sessionStore.set(null);
  onEnded();
}

/** One client for the app: batching, refresh, uploads and the WebSocket are the client's. */
export const client = createClient({
  url: `${window.location.origin}/trpc`,
  session: sessionStore,
  onSessionEnded: () => {
    markSessionEnded(SESSION_ENDED_MESSAGE);
    onEnded();
  },
});

export const queryClient = new QueryClient({
  defaultOptions: {
    queries: { staleTime: 10_000, retry: false, refetchOnWindowFocus: false },
  },
});

export const { TRPCProvider, useTRPC } = createTRPCContext<AppRouter>();
