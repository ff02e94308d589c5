import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import type { ProjectRole } from '../hooks';
import { useTRPC } from '../trpc';
import { ErrorText } from './auth';

const ROLES: ProjectRole[] = ['viewer', 'member', 'admin'];

/**
 * The project's API keys (admins): create one with a role and an optional expiry, see its
 * secret once, revoke. Keys act in this project only, never above their creator's role.
 */
export function ApiKeys({ projectId }: { projectId: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const keys = useQuery(trpc.apiKeys.list.queryOptions({ projectId }));
  const [name, setName] = useState('');
  const [role, setRole] = useState<ProjectRole>('member');
  const [expires, setExpires] = useState('');
  const [secret, setSecret] = useState<{ name: string; value: string } | null>(null);
  const [copied, setCopied] = useState(false);
  const refresh = () => queryClient.invalidateQueries({ queryKey: trpc.apiKeys.list.pathKey() });
  const create = useMutation(
    trpc.apiKeys.create.mutationOptions({
      onSuccess: async (created) => {
        setSecret({ name: created.key.name, value: created.secret });
        setCopied(false);
        setName('');
        setExpires('');
        await refresh();
      },
    }),
  );
  const revoke = useMutation(trpc.apiKeys.revoke.mutationOptions({ onSuccess: refresh }));
  return (
    <section aria-label="API keys">
      <h2>API keys</h2>
      <p className="muted">
        For internal tools and SDKs: send a key as <code>Authorization: Bearer ssk_…</code> (or{' '}
        <code>x-api-key</code> to the gateway endpoints). It acts in this project only.
      </p>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate({
            projectId,
            name: name.trim(),
            role,
            // The end of the chosen day, in UTC.
            ...(expires ? { expiresAt: `${expires}T23:59:59.000Z` } : {}),
          });
        }}
      >
        <input
          aria-label="Key name"
          placeholder="Key name"
          required
          maxLength={100}
          value={name}
          onChange={(e) => setName(e.target.value)}
        />
        <select
          aria-label="Key role"
          value={role}
          onChange={(e) => setRole(e.target.value as ProjectRole)}
        >
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
        <label className="field inline">
          <span>Expires</span>
          <input
            type="date"
            aria-label="Key expiry"
            value={expires}
            onChange={(e) => setExpires(e.target.value)}
          />
        </label>
        <button type="submit" disabled={create.isPending || !name.trim()}>
          Create key
        </button>
      </form>
      <ErrorText error={create.error ?? revoke.error ?? keys.error} />
      {secret && (
        <div className="secret" role="status" aria-label="New key secret">
          <p>
            The secret of <strong>{secret.name}</strong>, shown this once: copy it now.
          </p>
          <code>{secret.value}</code>{' '}
          <button
            type="button"
            className="link"
            onClick={() => {
              void navigator.clipboard?.writeText(secret.value).then(() => setCopied(true));
            }}
          >
            {copied ? 'Copied' : 'Copy secret'}
          </button>{' '}
          <button type="button" className="link" onClick={() => setSecret(null)}>
            Done
          </button>
        </div>
      )}
      <table className="table" aria-label="Keys">
        <thead>
          <tr>
            <th>Name</th>
            <th>Key</th>
            <th>Role</th>
            <th>Last used</th>
            <th>Expires</th>
            <th>Status</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(keys.data ?? []).map((k) => (
            <tr key={k.id}>
              <td>{k.name}</td>
              <td>
                <code>{k.prefix}…</code>
              </td>
              <td>{k.role}</td>
              <td>{k.lastUsedAt ? new Date(k.lastUsedAt).toLocaleString() : 'never'}</td>
              <td>{k.expiresAt ? new Date(k.expiresAt).toLocaleDateString() : '—'}</td>
              <td>{k.revokedAt ? 'revoked' : 'active'}</td>
              <td>
                {!k.revokedAt && (
                  <button
                    type="button"
                    className="link danger"
                    aria-label={`Revoke ${k.name}`}
                    disabled={revoke.isPending}
                    onClick={() => {
                      if (
                        window.confirm(`Revoke the key "${k.name}"? Tools using it stop at once.`)
                      ) {
                        revoke.mutate({ keyId: k.id });
                      }
                    }}
                  >
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
