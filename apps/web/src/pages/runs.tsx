import { useInfiniteQuery, useMutation, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { errorMessage } from '../errors';
import { roleAtLeast, useCurrentProject } from '../hooks';
import { isFinished, type RunStatus } from '../runs/timeline';
import { useTRPC } from '../trpc';
import { usdc } from '../usage/money';
import { ErrorText } from './auth';

const STATUSES: RunStatus[] = [
  'queued',
  'running',
  'awaiting_approval',
  'succeeded',
  'failed',
  'cancelled',
];

/** /projects/:projectId/runs: the project's runs, newest first, and a form to start one. */
export function RunsPage() {
  const { projectId, role } = useCurrentProject();
  const trpc = useTRPC();
  const [params, setParams] = useSearchParams();
  const status = params.get('status') ?? '';
  const agentId = params.get('agent') ?? '';
  const agents = useQuery(trpc.agents.list.queryOptions({ projectId }));
  const names = new Map(agents.data?.map((a) => [a.id, a.name]));
  const runs = useInfiniteQuery(
    trpc.runs.list.infiniteQueryOptions(
      { projectId, limit: 50, ...(agentId ? { agentId } : {}) },
      {
        getNextPageParam: (page) => page.nextCursor ?? undefined,
        // Statuses move while runs go: keep the list fresh while any is unfinished.
        refetchInterval: (q) =>
          q.state.data?.pages.some((p) => p.items.some((r) => !isFinished(r.status)))
            ? 2000
            : false,
      },
    ),
  );
  // runs.list filters by agent only; the status filter applies to the pages loaded.
  const items = runs.data?.pages.flatMap((p) => p.items) ?? [];
  const shown = status ? items.filter((r) => r.status === status) : items;
  const setFilter = (name: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(name, value);
    else next.delete(name);
    setParams(next, { replace: true });
  };

  return (
    <section className="page">
      <div className="row">
        <h1>Runs</h1>
        <span className="spacer" />
        <Link to={`/projects/${projectId}/agents`}>Agents</Link>
      </div>
      {roleAtLeast(role, 'member') && <StartRunForm agents={agents.data ?? []} />}
      <fieldset className="row">
        <legend className="sr-only">Filters</legend>
        <label className="field inline">
          <span>Status</span>
          <select value={status} onChange={(e) => setFilter('status', e.target.value)}>
            <option value="">all</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label className="field inline">
          <span>Agent</span>
          <select value={agentId} onChange={(e) => setFilter('agent', e.target.value)}>
            <option value="">all</option>
            {agents.data?.map((a) => (
              <option key={a.id} value={a.id}>
                {a.name}
              </option>
            ))}
          </select>
        </label>
      </fieldset>
      <ErrorText error={runs.error} />
      <table className="table" aria-label="Runs">
        <thead>
          <tr>
            <th>Started</th>
            <th>Agent</th>
            <th>Input</th>
            <th>Status</th>
            <th>Tokens</th>
            <th>Cost (USDC)</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((r) => (
            <tr key={r.id} data-status={r.status}>
              <td>
                <Link to={`/projects/${projectId}/runs/${r.id}`}>
                  {new Date(r.createdAt).toLocaleString()}
                </Link>
              </td>
              <td>{names.get(r.agentId) ?? r.agentId}</td>
              <td className="clip">{r.input.slice(0, 80)}</td>
              <td>
                <span className={`badge ${r.status}`}>{r.status}</span>
              </td>
              <td>{r.usage.inputTokens + r.usage.outputTokens}</td>
              <td>{usdc(r.cost)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {runs.data && shown.length === 0 && <p className="muted">No runs.</p>}
      {runs.hasNextPage && (
        <button type="button" className="link" onClick={() => void runs.fetchNextPage()}>
          Load more runs
        </button>
      )}
    </section>
  );
}

/** Starts a run of one of `agents` (the active ones) and opens its console. */
export function StartRunForm({
  agents,
}: {
  agents: { id: string; name: string; status: string }[];
}) {
  const { projectId } = useCurrentProject();
  const trpc = useTRPC();
  const navigate = useNavigate();
  const active = agents.filter((a) => a.status === 'active');
  const [agentId, setAgentId] = useState('');
  const [input, setInput] = useState('');
  const chosen = agentId || active[0]?.id || '';
  const start = useMutation(
    trpc.runs.start.mutationOptions({
      onSuccess: (run) => navigate(`/projects/${projectId}/runs/${run.id}`),
    }),
  );
  if (active.length === 0) {
    return <p className="muted">No active agent to run.</p>;
  }
  return (
    <form
      className="column card-plain"
      onSubmit={(e) => {
        e.preventDefault();
        start.mutate({ agentId: chosen, input });
      }}
    >
      <label className="field inline">
        <span>Agent to run</span>
        <select value={chosen} onChange={(e) => setAgentId(e.target.value)}>
          {active.map((a) => (
            <option key={a.id} value={a.id}>
              {a.name}
            </option>
          ))}
        </select>
      </label>
      <label className="field">
        <span>Run input</span>
        <textarea required rows={3} value={input} onChange={(e) => setInput(e.target.value)} />
      </label>
      {start.error && (
        <p role="alert" className="error">
          {errorMessage(start.error)}
        </p>
      )}
      <div className="row">
        <button type="submit" disabled={start.isPending || !chosen}>
          Start run
        </button>
      </div>
    </form>
  );
}
