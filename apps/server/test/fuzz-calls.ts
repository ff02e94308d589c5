/**
 * Calling any procedure by its path with any input, over HTTP and over WebSocket, and reading
 * back what a client sees: the HTTP status (or the status in the error's data) and the error.
 */
import { type SmartSpaceClient, TRPCClientError } from '@smartspace/client';
import WebSocket from 'ws';
import { asParsed, toJsonText } from './fuzz-inputs';

export type Kind = 'query' | 'mutation' | 'subscription';

export interface Outcome {
  /** HTTP status, or the error's `data.httpStatus`; 0 when no answer came at all. */
  status: number;
  appCode?: string;
  fieldErrors?: Record<string, string[]>;
  message?: string;
}

interface ErrorShape {
  message?: string;
  data?: { httpStatus?: number; appCode?: string; fieldErrors?: Record<string, string[]> };
}

function fromShape(shape: ErrorShape, fallbackStatus: number): Outcome {
  return {
    status: shape.data?.httpStatus ?? fallbackStatus,
    appCode: shape.data?.appCode,
    fieldErrors: shape.data?.fieldErrors,
    message: shape.message,
  };
}

const CALL_TIMEOUT_MS = 10_000;
/**
 * A frame over WS_MAX_PAYLOAD_BYTES closes the socket (1009): subscriptions sent meanwhile
 * wait for the client's backoff and reconnect, which on a loaded machine can pass 10 s.
 */
const SUBSCRIBE_TIMEOUT_MS = 30_000;
/** A subscription that started is watched this long for an error raised after it started. */
const SETTLE_MS = 100;

async function responseOutcome(res: Response): Promise<Outcome> {
  const text = await res.text();
  try {
    const body = JSON.parse(text) as { error?: ErrorShape };
    return body.error ? fromShape(body.error, res.status) : { status: res.status };
  } catch {
    return { status: res.status, message: text.slice(0, 200) };
  }
}

/**
 * One call the way httpLink makes it: POST for mutations, GET otherwise (subscriptions are
 * refused over HTTP, and answer as plain JSON).
 */
export async function httpCall(
  origin: string,
  token: string,
  kind: Kind,
  path: string,
  input: unknown,
): Promise<Outcome> {
  const text = toJsonText(input);
  const auth = { authorization: `Bearer ${token}` };
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), CALL_TIMEOUT_MS);
  try {
    const url = `${origin}/trpc/${path}`;
    const query = text === undefined ? '' : `?input=${encodeURIComponent(text)}`;
    const res =
      kind === 'mutation'
        ? await fetch(url, {
            method: 'POST',
            headers: { ...auth, 'content-type': 'application/json' },
            body: text ?? '',
            signal: abort.signal,
          })
        : await fetch(`${url}${query}`, { headers: auth, signal: abort.signal });
    return await responseOutcome(res);
  } catch (err) {
    return { status: 0, message: `no answer: ${String(err)}` };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Queries and mutations over a WebSocket in the tRPC protocol. The typed client sends only
 * subscriptions over its socket, so calls go as raw protocol messages (with the bytes a
 * malformed client would send); a closed socket is reopened for the next call.
 */
export class RpcSocket {
  private ws: WebSocket | null = null;
  private ready: Promise<void> | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, (o: Outcome) => void>();

  constructor(
    private readonly origin: string,
    private readonly token: string,
  ) {}

  private open(): Promise<void> {
    const state = this.ws?.readyState;
    if (this.ready && (state === WebSocket.OPEN || state === WebSocket.CONNECTING)) {
      return this.ready;
    }
    const ws = new WebSocket(`${this.origin.replace(/^http/, 'ws')}/trpc?connectionParams=1`);
    this.ws = ws;
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { id?: number; error?: ErrorShape };
      const done = msg.id === undefined ? undefined : this.pending.get(msg.id);
      if (!done || msg.id === undefined) return;
      this.pending.delete(msg.id);
      done(msg.error ? fromShape(msg.error, 0) : { status: 200 });
    });
    ws.on('close', (code) => {
      for (const [id, done] of this.pending) {
        this.pending.delete(id);
        done({ status: 0, message: `socket closed with ${code}` });
      }
    });
    this.ready = new Promise((resolve, reject) => {
      ws.once('open', () => {
        ws.send(JSON.stringify({ method: 'connectionParams', data: { token: this.token } }));
        resolve();
      });
      ws.once('error', reject);
    });
    return this.ready;
  }

  async call(kind: 'query' | 'mutation', path: string, input: unknown): Promise<Outcome> {
    await this.open();
    const id = this.nextId++;
    const text = toJsonText(input);
    const params = `{"path":${JSON.stringify(path)}${text === undefined ? '' : `,"input":${text}`}}`;
    return new Promise<Outcome>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve({ status: 0, message: 'no answer within the timeout' });
      }, CALL_TIMEOUT_MS);
      this.pending.set(id, (o) => {
        clearTimeout(timer);
        resolve(o);
      });
      this.ws?.send(`{"id":${id},"method":"${kind}","params":${params}}`);
    });
  }

  close(): void {
    this.ws?.close();
  }
}

interface Subscribable {
  subscribe(
    input: unknown,
    opts: { onStarted(): void; onData(): void; onError(err: unknown): void },
  ): { unsubscribe(): void };
}

function procedureOf(client: SmartSpaceClient, path: string): Subscribable {
  let node: unknown = client;
  for (const key of path.split('.')) node = (node as Record<string, unknown>)[key];
  return node as Subscribable;
}

/**
 * A subscription through the typed client's WebSocket: it must either start or fail, never
 * hang. The client serialises the input itself, so values only raw JSON can carry (1e999)
 * arrive as JSON.parse would read them.
 */
export function wsSubscribe(client: SmartSpaceClient, path: string, input: unknown) {
  return new Promise<Outcome>((resolve) => {
    let settle: NodeJS.Timeout | undefined;
    let sub: { unsubscribe(): void } | undefined;
    let result: Outcome | undefined;
    const finish = (o: Outcome) => {
      clearTimeout(settle);
      clearTimeout(hang);
      result ??= o;
      sub?.unsubscribe();
      resolve(result);
    };
    const hang = setTimeout(
      () => finish({ status: 0, message: 'neither started nor failed' }),
      SUBSCRIBE_TIMEOUT_MS,
    );
    sub = procedureOf(client, path).subscribe(asParsed(input), {
      onStarted() {
        settle = setTimeout(() => finish({ status: 200 }), SETTLE_MS);
      },
      onData() {},
      onError(err) {
        if (err instanceof TRPCClientError && err.data) {
          finish(fromShape({ message: err.message, data: err.data }, 0));
        } else finish({ status: 0, message: `transport error: ${String(err)}` });
      },
    });
    // An error reported while subscribe() was still running.
    if (result) sub.unsubscribe();
  });
}

/** A multipart call, as the typed client sends FormData input. */
export async function httpForm(
  origin: string,
  token: string,
  path: string,
  form: FormData,
): Promise<Outcome> {
  try {
    const res = await fetch(`${origin}/trpc/${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: form,
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
    return await responseOutcome(res);
  } catch (err) {
    return { status: 0, message: `no answer: ${String(err)}` };
  }
}
