import { useMutation } from '@tanstack/react-query';
import { useState } from 'react';
import { useSession } from '../hooks';
import { sessionStore } from '../session';
import { client, useTRPC } from '../trpc';
import { ErrorText, Field } from './auth';

/** Signs out this browser: the refresh token is revoked server-side, then forgotten here. */
export async function signOut(): Promise<void> {
  const session = sessionStore.current();
  try {
    if (session) await client.auth.logout.mutate({ refreshToken: session.refreshToken });
  } finally {
    sessionStore.set(null);
  }
}

export function AccountPage() {
  const trpc = useTRPC();
  const session = useSession();
  const [currentPassword, setCurrent] = useState('');
  const [newPassword, setNew] = useState('');
  const change = useMutation(
    trpc.auth.changePassword.mutationOptions({
      onSuccess: () => {
        setCurrent('');
        setNew('');
      },
    }),
  );
  const logoutAll = useMutation(trpc.auth.logoutAll.mutationOptions());
  const [name, setName] = useState<string | null>(null);
  const rename = useMutation(
    trpc.users.update.mutationOptions({
      onSuccess: (user) => {
        setName(null);
        // The stored session carries the name the header shows.
        const current = sessionStore.current();
        if (current) sessionStore.set({ ...current, user: { ...current.user, name: user.name } });
      },
    }),
  );
  return (
    <section className="page">
      <h1>Account</h1>
      <p>
        Signed in as <strong>{session?.user.name}</strong> ({session?.user.email})
      </p>
      <h2>Your name</h2>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          if (name?.trim()) rename.mutate({ name: name.trim() });
        }}
      >
        <input
          aria-label="Your name"
          required
          maxLength={100}
          value={name ?? session?.user.name ?? ''}
          onChange={(e) => setName(e.target.value)}
        />
        <button type="submit" disabled={rename.isPending || !name?.trim()}>
          Save name
        </button>
      </form>
      <ErrorText error={rename.error} />
      <h2>Change password</h2>
      <form
        className="narrow"
        onSubmit={(e) => {
          e.preventDefault();
          change.mutate({ currentPassword, newPassword });
        }}
      >
        <Field
          label="Current password"
          name="currentPassword"
          type="password"
          autoComplete="current-password"
          value={currentPassword}
          onChange={setCurrent}
        />
        <Field
          label="New password"
          name="newPassword"
          type="password"
          autoComplete="new-password"
          minLength={8}
          value={newPassword}
          onChange={setNew}
        />
        <ErrorText error={change.error} />
        {change.isSuccess && <p role="status">Password changed.</p>}
        <button type="submit" disabled={change.isPending}>
          Change password
        </button>
      </form>
      <h2>Sessions</h2>
      <p>Sign out on every device and browser, this one included.</p>
      <ErrorText error={logoutAll.error} />
      <button
        type="button"
        className="danger"
        disabled={logoutAll.isPending}
        onClick={() => logoutAll.mutate()}
      >
        Sign out everywhere
      </button>
    </section>
  );
}
