import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router';
import { roleAtLeast, useCurrentProject } from '../hooks';
import { useTRPC } from '../trpc';
import { ErrorText } from './auth';
import { McpServers } from './mcp-servers';

export function AgentsPage() {
  const { projectId, role } = useCurrentProject();
  const trpc = useTRPC();
  const agents = useQuery(trpc.agents.list.queryOptions({ projectId }));
  const names = new Map(agents.data?.map((a) => [a.id, a.name]));
  return (
    <section className="page">
      <div className="row">
        <h1>Agents</h1>
        <span className="spacer" />
        <Link to={`/projects/${projectId}/runs`}>Runs</Link>
        {roleAtLeast(role, 'admin') && (
          <Link className="button" to={`/projects/${projectId}/agents/new`}>
            New agent
          </Link>
        )}
      </div>
      <ErrorText error={agents.error} />
      <table className="table" aria-label="Agents">
        <thead>
          <tr>
            <th>Name</th>
            <th>Model</th>
            <th>Tools</th>
            <th>Hands off to</th>
            <th>Output</th>
            <th>Status</th>
          </tr>
        </thead>
        <tbody>
          {agents.data?.map((a) => (
            <tr key={a.id}>
              <td>
                <Link to={`/projects/${projectId}/agents/${a.id}`}>{a.name}</Link>
              </td>
              <td>{a.model}</td>
              <td>{a.tools.join(', ') || '—'}</td>
              <td>{a.handoffs.map((id) => names.get(id) ?? id).join(', ') || '—'}</td>
              <td>{a.outputSchema ? 'JSON schema' : 'text'}</td>
              <td>{a.status}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {agents.data?.length === 0 && <p className="muted">No agents yet.</p>}
      <McpServers projectId={projectId} canEdit={roleAtLeast(role, 'admin')} />
    </section>
  );
}
