import type { Session, SessionStore } from '@smartspace/client';

export const SESSION_KEY = 'smartspace.session';
const KEY = SESSION_KEY;

type Listener = (session: Session | null) => void;
const listeners = new Set<Listener>();

function read(): Session | null {
  try {
    const raw = localStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Session) : null;
  } catch {
    return null;
  }
}

/**
 * The session in localStorage, so it survives reloads and is shared by the app's tabs. The
 * client writes here on sign-in, refresh and sign-out; the UI listens for those changes.
 */
export const sessionStore: SessionStore & {
  current(): Session | null;
  subscribe(listener: Listener): () => void;
} = {
  get: read,
  current: read,
  set(session) {
    if (session) localStorage.setItem(KEY, JSON.stringify(session));
    else localStorage.removeItem(KEY);
    for (const l of listeners) l(session);
  },
  subscribe(listener) {
    listeners.add(listener);
    // Another tab signing in or out changes the same key.
    const onStorage = (e: StorageEvent) => {
      if (e.key !== KEY) return;
      if (e.oldValue && !e.newValue) markSessionEnded('You were signed out in another tab.');
      listener(read());
    };
    window.addEventListener('storage', onStorage);
    return () => {
      listeners.delete(listener);
      window.removeEventListener('storage', onStorage);
    };
  },
};

/** Why the user was signed out, shown once on the sign-in page. */
const ENDED_KEY = 'smartspace.sessionEnded';

export function markSessionEnded(message: string): void {
  sessionStorage.setItem(ENDED_KEY, message);
}

export function takeSessionEndedMessage(): string | null {
  const message = sessionStorage.getItem(ENDED_KEY);
  sessionStorage.removeItem(ENDED_KEY);
  return message;
}
