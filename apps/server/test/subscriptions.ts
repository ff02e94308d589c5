export interface SubscriptionError {
  code?: string;
  appCode?: string;
}

/** What a subscription delivered, and how it ended. */
export interface Watched {
  data: unknown[];
  /** Resolves once the server has started the subscription. */
  started: Promise<void>;
  /** Resolves with the error data the subscription ended with. */
  ended: Promise<SubscriptionError>;
  stop(): void;
}

type Handlers = {
  onStarted: () => void;
  onData: (tracked: { id: string; data: unknown }) => void;
  onError: (err: unknown) => void;
};

/**
 * Starts one subscription through the typed client and records it, e.g.
 * `watch((h) => client.chat.onEvent.subscribe({ conversationId }, h))`.
 */
export function watch(subscribe: (handlers: Handlers) => { unsubscribe(): void }): Watched {
  const data: unknown[] = [];
  let onStarted = () => {};
  const started = new Promise<void>((resolve) => {
    onStarted = resolve;
  });
  let onEnded: (e: SubscriptionError) => void = () => {};
  const ended = new Promise<SubscriptionError>((resolve) => {
    onEnded = resolve;
  });
  const sub = subscribe({
    onStarted,
    onData: (tracked) => data.push(tracked.data),
    onError: (err) => onEnded((err as { data?: SubscriptionError }).data ?? {}),
  });
  return { data, started, ended, stop: () => sub.unsubscribe() };
}

/** Resolves with `promise`, or rejects after `ms` naming `what`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/** The chat events of a conversation carrying a user message with `content`. */
export function messagesWith(data: unknown[], content: string): unknown[] {
  return data.filter((e) => {
    const event = e as { type?: string; message?: { content?: string } };
    return event.type === 'message.created' && event.message?.content === content;
  });
}
