import { useInfiniteQuery, useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useSession } from '../hooks';
import { useTRPC } from '../trpc';
import { ErrorText } from './auth';

export function AdminUsersPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const session = useSession();
  const [draft, setDraft] = useState('');
  const [query, setQuery] = useState('');
  const users = useInfiniteQuery(
    trpc.users.list.infiniteQueryOptions(
      { limit: 50, ...(query ? { query } : {}) },
      { getNextPageParam: (page) => page.nextCursor ?? undefined },
    ),
  );
  const refresh = () => queryClient.invalidateQueries({ queryKey: trpc.users.list.pathKey() });
  const setRole = useMutation(trpc.users.setRole.mutationOptions({ onSuccess: refresh }));
  const setActive = useMutation(trpc.users.setActive.mutationOptions({ onSuccess: refresh }));
  const items = users.data?.pages.flatMap((p) => p.items) ?? [];

  return (
    <section className="page">
      <h1>Users</h1>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          setQuery(draft.trim());
        }}
      >
        <input
          type="search"
          aria-label="Search users"
          placeholder="Name or email"
          maxLength={100}
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
        />
        <button type="submit">Search</button>
      </form>
      <ErrorText error={users.error ?? setRole.error ?? setActive.error} />
      {users.data && items.length === 0 && <p className="muted">No user matches.</p>}
      {items.length > 0 && (
        <table className="table" aria-label="Users">
          <thead>
            <tr>
              <th>Name</th>
              <th>Email</th>
              <th>Role</th>
              <th>Status</th>
              <th>Joined</th>
              <th>Actions</th>
            </tr>
          </thead>
          <tbody>
            {items.map((u) => {
              // The server refuses changes to one's own account (the last admin stays).
              const self = u.id === session?.user.id;
              return (
                <tr key={u.id} data-active={u.active}>
                  <td>{u.name}</td>
                  <td>{u.email}</td>
                  <td>
                    {self ? (
                      `${u.role} (you)`
                    ) : (
                      <select
                        aria-label={`Platform role of ${u.email}`}
                        value={u.role}
                        disabled={setRole.isPending}
                        onChange={(e) =>
                          setRole.mutate({
                            userId: u.id,
                            role: e.target.value as 'user' | 'admin',
                          })
                        }
                      >
                        <option value="user">user</option>
                        <option value="admin">admin</option>
                      </select>
                    )}
                  </td>
                  <td>{u.active ? 'active' : 'deactivated'}</td>
                  <td>{new Date(u.createdAt).toLocaleDateString()}</td>
                  <td>
                    {!self && (
                      <button
                        type="button"
                        className={u.active ? 'link danger' : 'link'}
                        aria-label={`${u.active ? 'Deactivate' : 'Reactivate'} ${u.email}`}
                        disabled={setActive.isPending}
                        onClick={() => setActive.mutate({ userId: u.id, active: !u.active })}
                      >
                        {u.active ? 'Deactivate' : 'Reactivate'}
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {users.hasNextPage && (
        <button
          type="button"
          className="secondary"
          disabled={users.isFetchingNextPage}
          onClick={() => void users.fetchNextPage()}
        >
          More users
        </button>
      )}
      <p className="muted">
        Deactivating signs the user out everywhere at once; they cannot sign in until reactivated.
      </p>
    </section>
  );
}
