import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useNavigate } from 'react-router';
import { type ProjectRole, roleAtLeast, useCurrentProject, useSession } from '../hooks';
import { useTRPC } from '../trpc';
import { ApiKeys } from './api-keys';
import { ErrorText } from './auth';

const ROLES: ProjectRole[] = ['viewer', 'member', 'admin', 'owner'];

export function ProjectSettingsPage() {
  const { projectId, project, role } = useCurrentProject();
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const [name, setName] = useState<string | null>(null);
  const invalidateProjects = () =>
    queryClient.invalidateQueries({ queryKey: trpc.projects.list.queryKey() });
  const rename = useMutation(
    trpc.projects.update.mutationOptions({
      onSuccess: async () => {
        setName(null);
        await invalidateProjects();
      },
    }),
  );
  const remove = useMutation(
    trpc.projects.delete.mutationOptions({
      onSuccess: async () => {
        await invalidateProjects();
        navigate('/projects');
      },
    }),
  );
  if (!project) return <section className="page">Loading…</section>;
  return (
    <section className="page">
      <h1>{project.name}</h1>
      <p className="muted">Your role: {role}</p>
      {roleAtLeast(role, 'admin') && (
        <form
          className="row"
          onSubmit={(e) => {
            e.preventDefault();
            if (name) rename.mutate({ projectId, name });
          }}
        >
          <input
            aria-label="Project name"
            required
            maxLength={100}
            value={name ?? project.name}
            onChange={(e) => setName(e.target.value)}
          />
          <button type="submit" disabled={rename.isPending || !name}>
            Rename project
          </button>
        </form>
      )}
      <ErrorText error={rename.error} />
      <Members projectId={projectId} role={role} />
      {roleAtLeast(role, 'admin') && <ApiKeys projectId={projectId} />}
      {role === 'owner' && (
        <>
          <h2>Danger zone</h2>
          <ErrorText error={remove.error} />
          <button
            type="button"
            className="danger"
            disabled={remove.isPending}
            onClick={() => {
              if (window.confirm(`Delete project "${project.name}" and everything in it?`)) {
                remove.mutate({ projectId });
              }
            }}
          >
            Delete project
          </button>
        </>
      )}
    </section>
  );
}

function Members({ projectId, role }: { projectId: string; role: ProjectRole | undefined }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const session = useSession();
  const members = useQuery(trpc.projects.members.list.queryOptions({ projectId }));
  const [email, setEmail] = useState('');
  const [newRole, setNewRole] = useState<ProjectRole>('member');
  const refresh = () =>
    queryClient.invalidateQueries({ queryKey: trpc.projects.members.list.queryKey({ projectId }) });
  const add = useMutation(
    trpc.projects.members.add.mutationOptions({
      onSuccess: async () => {
        setEmail('');
        await refresh();
      },
    }),
  );
  const update = useMutation(
    trpc.projects.members.updateRole.mutationOptions({ onSuccess: refresh }),
  );
  const removeMember = useMutation(
    trpc.projects.members.remove.mutationOptions({ onSuccess: refresh }),
  );
  const canManage = roleAtLeast(role, 'admin');
  // Only an owner may grant or take the owner role.
  const grantable = ROLES.filter((r) => r !== 'owner' || role === 'owner');
  return (
    <>
      <h2>Members</h2>
      <ErrorText error={members.error ?? update.error ?? removeMember.error} />
      <table className="table">
        <thead>
          <tr>
            <th>Name</th>
            <th>Email</th>
            <th>Role</th>
            {canManage && <th>Actions</th>}
          </tr>
        </thead>
        <tbody>
          {members.data?.map((m) => (
            <tr key={m.userId}>
              <td>{m.name}</td>
              <td>{m.email}</td>
              <td>
                {canManage &&
                m.userId !== session?.user.id &&
                (m.role !== 'owner' || role === 'owner') ? (
                  <select
                    aria-label={`Role of ${m.email}`}
                    value={m.role}
                    onChange={(e) =>
                      update.mutate({
                        projectId,
                        userId: m.userId,
                        role: e.target.value as ProjectRole,
                      })
                    }
                  >
                    {grantable.map((r) => (
                      <option key={r}>{r}</option>
                    ))}
                  </select>
                ) : (
                  m.role
                )}
              </td>
              {canManage && (
                <td>
                  {m.userId !== session?.user.id && (m.role !== 'owner' || role === 'owner') && (
                    <button
                      type="button"
                      className="link"
                      aria-label={`Remove ${m.email}`}
                      onClick={() => removeMember.mutate({ projectId, userId: m.userId })}
                    >
                      Remove
                    </button>
                  )}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {canManage && (
        <form
          className="row"
          onSubmit={(e) => {
            e.preventDefault();
            add.mutate({ projectId, email, role: newRole });
          }}
        >
          <input
            type="email"
            aria-label="Member email"
            placeholder="Email of a registered user"
            required
            value={email}
            onChange={(e) => setEmail(e.target.value)}
          />
          <select
            aria-label="New member role"
            value={newRole}
            onChange={(e) => setNewRole(e.target.value as ProjectRole)}
          >
            {grantable.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
          <button type="submit" disabled={add.isPending}>
            Add member
          </button>
        </form>
      )}
      <ErrorText error={add.error} />
    </>
  );
}
