import type { AppRouter, Session } from '@smartspace/api';
import {
  createTRPCClient,
  createWSClient,
  httpBatchLink,
  httpLink,
  isNonJsonSerializable,
  splitLink,
  type TRPCClient,
  TRPCClientError,
  type TRPCLink,
  wsLink,
} from '@trpc/client';
import { observable } from '@trpc/server/observable';
import { createRefresher, isUnauthorized, memorySessionStore, type SessionStore } from './refresh';

export type {
  ApiKey,
  AppRouter,
  ChatEvent,
  Conversation,
  CreatedApiKey,
  Member,
  Message,
  Payment,
  Project,
  ReplyErrorCode,
  RouterInputs,
  RouterOutputs,
  Run,
  RunErrorCode,
  RunEvent,
  RunStep,
  Session,
  User,
  Wallet,
} from '@smartspace/api';
export { TRPCClientError } from '@trpc/client';
export { memorySessionStore, type SessionStore } from './refresh';

export interface ClientOptions {
  /** Base URL of the server's tRPC endpoint, e.g. `http://localhost:3000/trpc`. */
  url: string;
  /** Session storage (defaults to memory). Sign-in results are saved here automatically. */
  session?: SessionStore;
  /**
   * Supplies the access token when you manage tokens yourself (no automatic refresh then
   * unless `session` is given too).
   */
  getAccessToken?: () => string | null | undefined | Promise<string | null | undefined>;
  /** Called when a refresh fails because the session ended (sign the user out). */
  onSessionEnded?: () => void;
  /** Custom fetch (tests, older runtimes). */
  fetch?: typeof globalThis.fetch;
  /** Max calls per HTTP batch; the server accepts up to 20. */
  maxBatchSize?: number;
  /** WebSocket URL for subscriptions; defaults to `url` with ws(s)://. */
  wsUrl?: string;
  /**
   * WebSocket implementation. Browsers and Node 22+ have one; Node 20 does not: pass
   * `WebSocket` from the `ws` package.
   */
  WebSocket?: WebSocketClass;
}

/**
 * What the client needs of a WebSocket class. Declared structurally so the browser's, Node's
 * global one and the `ws` package's (whose typings differ from the DOM's) all fit.
 */
export interface WebSocketClass {
  new (url: string): WebSocketLike;
  readonly CONNECTING: number;
  readonly OPEN: number;
  readonly CLOSING: number;
  readonly CLOSED: number;
}

export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** Refresh a token this close to expiry before (re)connecting a socket with it. */
const SOCKET_REFRESH_MARGIN_MS = 60_000;

/** Exponential backoff with jitter, 0.5 s doubling to 30 s. */
function reconnectDelay(attempt: number): number {
  const base = Math.min(30_000, 500 * 2 ** attempt);
  return base / 2 + Math.random() * (base / 2);
}

export type SmartSpaceClient = TRPCClient<AppRouter>;

const SESSION_PATHS = new Set(['auth.register', 'auth.login', 'auth.refresh']);
const SIGN_OUT_PATHS = new Set(['auth.logout', 'auth.logoutAll']);

export function createClient(opts: ClientOptions): SmartSpaceClient {
  const store = opts.session ?? memorySessionStore();
  const fetchImpl = opts.fetch;

  async function accessToken(): Promise<string | null> {
    if (opts.getAccessToken) return (await opts.getAccessToken()) ?? null;
    return (await store.get())?.accessToken ?? null;
  }

  // Refresh calls go over a bare link, so they never recurse into the retry link.
  const bare = createTRPCClient<AppRouter>({
    links: [httpLink({ url: opts.url, ...(fetchImpl ? { fetch: fetchImpl } : {}) })],
  });
  const refresher = createRefresher({
    store,
    exchange: (refreshToken) => bare.auth.refresh.mutate({ refreshToken }),
    onSessionEnded: opts.onSessionEnded,
  });

  /**
   * On UNAUTHORIZED: refresh once (shared by concurrent calls), then retry the call once.
   * Saves sessions returned by sign-in calls and forgets them on sign-out.
   */
  const authLink: TRPCLink<AppRouter> =
    () =>
    ({ next, op }) =>
      observable((observer) => {
        let sub: { unsubscribe(): void } | undefined;
        let retried = false;
        const attempt = (sentWith: string | null) => {
          sub = next(op).subscribe({
            next(result) {
              const data = result.result.type === 'data' ? result.result.data : undefined;
              if (SESSION_PATHS.has(op.path) && data) void store.set(data as Session);
              if (SIGN_OUT_PATHS.has(op.path)) void store.set(null);
              observer.next(result);
            },
            error(err) {
              if (retried || !isUnauthorized(err) || SESSION_PATHS.has(op.path)) {
                observer.error(err);
                return;
              }
              retried = true;
              refresher.refresh(sentWith).then(
                (fresh) => {
                  if (fresh) attempt(fresh.accessToken);
                  else observer.error(err);
                },
                () => observer.error(err),
              );
            },
            complete() {
              observer.complete();
            },
          });
        };
        void accessToken().then(attempt, (e) => observer.error(TRPCClientError.from(e)));
        return () => sub?.unsubscribe();
      });

  // Lazy: the socket opens with the first subscription and closes when none is left, so a
  // socket always carries the token current when it opened. connectionParams is read on
  // every (re)connect; on reconnect, tracked subscriptions resume after their last id.
  // tRPC types the option as the DOM's class; `ws` speaks the same protocol and events but
  // its typings differ, hence the structural option type and this one conversion.
  const WS = (opts.WebSocket as typeof globalThis.WebSocket | undefined) ?? globalThis.WebSocket;
  const ws = WS
    ? createWSClient({
        url: opts.wsUrl ?? opts.url.replace(/^http/, 'ws'),
        WebSocket: WS,
        lazy: { enabled: true, closeMs: 0 },
        retryDelayMs: reconnectDelay,
        keepAlive: { enabled: true, intervalMs: 20_000, pongTimeoutMs: 5_000 },
        async connectionParams() {
          if (opts.getAccessToken) {
            const token = await opts.getAccessToken();
            return token ? { token } : {};
          }
          let session = await store.get();
          if (
            session &&
            Date.parse(session.accessTokenExpiresAt) - Date.now() < SOCKET_REFRESH_MARGIN_MS
          ) {
            session = await refresher.refresh(session.accessToken).catch(() => session);
          }
          return session ? { token: session.accessToken } : {};
        },
      })
    : null;

  const http = httpBatchLink({
    url: opts.url,
    maxItems: opts.maxBatchSize ?? 20,
    ...(fetchImpl ? { fetch: fetchImpl } : {}),
    async headers() {
      const token = await accessToken();
      return token ? { authorization: `Bearer ${token}` } : {};
    },
  });

  // FormData (file uploads) cannot be batched as JSON: it goes alone as multipart.
  const single = httpLink({
    url: opts.url,
    ...(fetchImpl ? { fetch: fetchImpl } : {}),
    async headers() {
      const token = await accessToken();
      return token ? { authorization: `Bearer ${token}` } : {};
    },
  });
  const calls = splitLink<AppRouter>({
    condition: (op) => isNonJsonSerializable(op.input),
    true: single,
    false: http,
  });

  const client = createTRPCClient<AppRouter>({
    links: [
      authLink,
      ws
        ? splitLink({
            condition: (op) => op.type === 'subscription',
            true: wsLink({ client: ws }),
            false: calls,
          })
        : calls,
    ],
  });
  if (ws) sockets.set(client, ws);
  return client;
}

const sockets = new WeakMap<object, ReturnType<typeof createWSClient>>();

/** Closes the client's WebSocket (ending its subscriptions), so a Node process can exit. */
export async function closeClient(client: SmartSpaceClient): Promise<void> {
  await sockets.get(client)?.close();
}
