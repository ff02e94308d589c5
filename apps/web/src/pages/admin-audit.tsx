import { useInfiniteQuery, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import {
  AUDIT_ACTIONS,
  type AuditFilter,
  type AuditFilterText,
  EMPTY_FILTER,
  isUuid,
  localToIso,
} from '../admin/audit-filters';
import { useProjects } from '../hooks';
import { useTRPC } from '../trpc';
import { ErrorText } from './auth';

export function AdminAuditPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const projects = useProjects();
  // Names for the ids in the log, as far as the first page of users goes.
  const users = useQuery(trpc.users.list.queryOptions({ limit: 100 }));
  const [text, setText] = useState<AuditFilterText>(EMPTY_FILTER);
  const [filter, setFilter] = useState<AuditFilter>({});
  const [formError, setFormError] = useState<string | null>(null);
  const events = useInfiniteQuery(
    trpc.audit.list.infiniteQueryOptions(
      { limit: 50, ...filter },
      { getNextPageParam: (page) => page.nextCursor ?? undefined },
    ),
  );
  const verify = useQuery({ ...trpc.audit.verify.queryOptions(), enabled: false });
  const items = events.data?.pages.flatMap((p) => p.items) ?? [];
  const userName = (id: string | null) =>
    id === null ? '—' : (users.data?.items.find((u) => u.id === id)?.email ?? id);
  const projectName = (id: string | null) =>
    id === null ? '—' : (projects.data?.items.find((p) => p.id === id)?.name ?? id);

  // A target is a user or a project.
  const nameOf = (id: string) =>
    users.data?.items.find((u) => u.id === id)?.email ??
    projects.data?.items.find((p) => p.id === id)?.name ??
    id;

  /** Emails and project names are looked up: the API filters by id. */
  const apply = async () => {
    setFormError(null);
    const next: AuditFilter = {};
    const actor = text.actor.trim();
    if (actor) {
      if (isUuid(actor)) next.actorId = actor;
      else {
        const found = await queryClient.fetchQuery(
          trpc.users.list.queryOptions({ query: actor, limit: 20 }),
        );
        const user = found.items.find((u) => u.email.toLowerCase() === actor.toLowerCase());
        if (!user) return setFormError(`No user with the email ${actor}`);
        next.actorId = user.id;
      }
    }
    const project = text.project.trim();
    if (project) {
      const byName = projects.data?.items.find((p) => p.name === project);
      if (byName) next.projectId = byName.id;
      else if (isUuid(project)) next.projectId = project;
      else return setFormError('Project: a project id, or the name of one of yours');
    }
    if (text.action.trim()) next.action = text.action.trim();
    const from = localToIso(text.from);
    const to = localToIso(text.to);
    if (from) next.from = from;
    if (to) next.to = to;
    setFilter(next);
  };
  const field = (key: keyof AuditFilterText) => ({
    value: text[key],
    onChange: (e: { target: { value: string } }) => setText({ ...text, [key]: e.target.value }),
  });

  return (
    <section className="page">
      <h1>Audit log</h1>
      <div className="row">
        <button type="button" onClick={() => void verify.refetch()} disabled={verify.isFetching}>
          {verify.isFetching ? 'Verifying…' : 'Verify chain'}
        </button>
        {verify.data && (
          <p role="status" className={verify.data.ok ? 'ok' : 'error'}>
            {verify.data.ok
              ? `Chain intact: ${verify.data.checked} events checked.`
              : `Chain broken at event ${verify.data.firstBrokenId} (${verify.data.checked} events checked).`}
          </p>
        )}
      </div>
      <ErrorText error={verify.error} />
      <form
        className="filters"
        aria-label="Audit filters"
        onSubmit={(e) => {
          e.preventDefault();
          void apply();
        }}
      >
        <label className="field">
          <span>Actor (email or id)</span>
          <input {...field('actor')} />
        </label>
        <label className="field">
          <span>Action</span>
          <input list="audit-actions" {...field('action')} />
          <datalist id="audit-actions">
            {AUDIT_ACTIONS.map((a) => (
              <option key={a} value={a} />
            ))}
          </datalist>
        </label>
        <label className="field">
          <span>Project (name or id)</span>
          <input list="audit-projects" {...field('project')} />
          <datalist id="audit-projects">
            {projects.data?.items.map((p) => (
              <option key={p.id} value={p.name} />
            ))}
          </datalist>
        </label>
        <label className="field">
          <span>From</span>
          <input type="datetime-local" {...field('from')} />
        </label>
        <label className="field">
          <span>Until</span>
          <input type="datetime-local" {...field('to')} />
        </label>
        <div className="row">
          <button type="submit">Apply filters</button>
          <button
            type="button"
            className="secondary"
            onClick={() => {
              setText(EMPTY_FILTER);
              setFilter({});
              setFormError(null);
            }}
          >
            Clear
          </button>
        </div>
      </form>
      {formError && (
        <p role="alert" className="error">
          {formError}
        </p>
      )}
      <ErrorText error={events.error} />
      {events.data && items.length === 0 && <p className="muted">No events match.</p>}
      {items.length > 0 && (
        <table className="table" aria-label="Audit events">
          <thead>
            <tr>
              <th>#</th>
              <th>When</th>
              <th>Action</th>
              <th>Actor</th>
              <th>Project</th>
              <th>Target</th>
              <th>IP</th>
              <th>Details</th>
            </tr>
          </thead>
          <tbody>
            {items.map((e) => (
              <tr key={e.id}>
                <td>{e.id}</td>
                <td>{new Date(e.at).toLocaleString()}</td>
                <td>
                  <code>{e.action}</code>
                </td>
                <td>{userName(e.actorId)}</td>
                <td>{projectName(e.projectId)}</td>
                <td>{e.target ? nameOf(e.target) : '—'}</td>
                <td>{e.ip ?? '—'}</td>
                <td>
                  <code className="metadata">
                    {Object.keys(e.metadata).length ? JSON.stringify(e.metadata) : ''}
                  </code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {events.hasNextPage && (
        <button
          type="button"
          className="secondary"
          disabled={events.isFetchingNextPage}
          onClick={() => void events.fetchNextPage()}
        >
          Older events
        </button>
      )}
    </section>
  );
}
