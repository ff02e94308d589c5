import type { Session } from '@smartspace/api';
import { describe, expect, it } from 'vitest';
import { createRefresher, memorySessionStore } from './refresh';

const session = (n: number): Session => ({
  user: {
    id: 'u',
    email: 'u@example.com',
    name: 'U',
    role: 'user',
    createdAt: new Date(0).toISOString(),
  },
  accessToken: `access-${n}`,
  refreshToken: `refresh-${n}`,
  accessTokenExpiresAt: new Date(0).toISOString(),
});

describe('createRefresher', () => {
  it('ten concurrent refreshes exchange the token once', async () => {
    const store = memorySessionStore(session(0));
    const spent: string[] = [];
    const refresher = createRefresher({
      store,
      exchange: async (token) => {
        spent.push(token);
        await new Promise((r) => setTimeout(r, 20));
        return session(spent.length);
      },
    });
    const results = await Promise.all(
      Array.from({ length: 10 }, () => refresher.refresh('access-0')),
    );
    expect(spent).toEqual(['refresh-0']);
    expect(results.every((s) => s?.accessToken === 'access-1')).toBe(true);
    expect((await store.get())?.refreshToken).toBe('refresh-1');
  });

  it('a late caller holding an already-replaced token reuses the newer session', async () => {
    const store = memorySessionStore(session(5));
    let calls = 0;
    const refresher = createRefresher({
      store,
      exchange: async () => {
        calls++;
        return session(6);
      },
    });
    expect((await refresher.refresh('access-4'))?.accessToken).toBe('access-5');
    expect(calls).toBe(0);
  });

  it('clears the session and reports it when the refresh token is refused', async () => {
    const store = memorySessionStore(session(0));
    let ended = 0;
    const refresher = createRefresher({
      store,
      exchange: async () => {
        throw Object.assign(new Error('reused'), { data: { code: 'UNAUTHORIZED' } });
      },
      onSessionEnded: () => ended++,
    });
    expect(await refresher.refresh('access-0')).toBeNull();
    expect(await store.get()).toBeNull();
    expect(ended).toBe(1);
  });

  it('keeps the session on a transient failure and lets the caller see the error', async () => {
    const store = memorySessionStore(session(0));
    const refresher = createRefresher({
      store,
      exchange: async () => {
        throw new Error('network down');
      },
    });
    await expect(refresher.refresh('access-0')).rejects.toThrow('network down');
    expect((await store.get())?.refreshToken).toBe('refresh-0');
  });
});
