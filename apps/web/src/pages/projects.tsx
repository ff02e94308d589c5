import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate } from 'react-router';
import { useProjects } from '../hooks';
import { useTRPC } from '../trpc';
import { ErrorText } from './auth';

export function ProjectsHome() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const projects = useProjects();
  const [name, setName] = useState('');
  const create = useMutation(
    trpc.projects.create.mutationOptions({
      onSuccess: async (project) => {
        await queryClient.invalidateQueries({ queryKey: trpc.projects.list.queryKey() });
        navigate(`/projects/${project.id}/chat`);
      },
    }),
  );
  return (
    <section className="page">
      <h1>Projects</h1>
      <ErrorText error={projects.error} />
      {projects.data && projects.data.items.length === 0 && <p>No projects yet: create one.</p>}
      <ul className="list">
        {projects.data?.items.map((p) => (
          <li key={p.id}>
            <Link to={`/projects/${p.id}/chat`}>{p.name}</Link>{' '}
            <span className="muted">{p.myRole}</span>
          </li>
        ))}
      </ul>
      <h2>New project</h2>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate({ name });
        }}
      >
        <input
          aria-label="Project name"
          placeholder="Project name"
          required
          maxLength={100}
          value={name}
          onChange={(e) => setName(e.target.value)}
        />
        <button type="submit" disabled={create.isPending}>
          Create project
        </button>
      </form>
      <ErrorText error={create.error} />
    </section>
  );
}
