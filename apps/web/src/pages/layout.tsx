import { useEffect } from 'react';
import { Link, NavLink, Outlet, useNavigate } from 'react-router';
import { useIsAdmin } from '../admin/useIsAdmin';
import { roleAtLeast, useCurrentProject, useProjects, useSession } from '../hooks';
import { BudgetAlerts } from '../usage/BudgetAlerts';
import { signOut } from './account';

export function Layout() {
  const session = useSession();
  const navigate = useNavigate();
  const projects = useProjects();
  const { projectId, missing, role } = useCurrentProject();
  const { isAdmin } = useIsAdmin();
  // The list may predate being added to this project: look once more before saying so.
  const { refetch } = projects;
  useEffect(() => {
    if (missing) void refetch();
  }, [missing, refetch]);
  return (
    <div className="shell">
      <header className="topbar">
        <strong className="brand">SmartSpace</strong>
        <label className="switcher">
          <span className="sr-only">Project</span>
          <select
            aria-label="Project"
            value={projectId}
            onChange={(e) =>
              navigate(e.target.value ? `/projects/${e.target.value}/chat` : '/projects')
            }
          >
            <option value="">All projects…</option>
            {projects.data?.items.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name}
              </option>
            ))}
          </select>
        </label>
        {projectId && (
          <nav aria-label="Project pages">
            <NavLink to={`/projects/${projectId}/chat`}>Chat</NavLink>
            <NavLink to={`/projects/${projectId}/files`}>Files</NavLink>
            <NavLink to={`/projects/${projectId}/agents`}>Agents</NavLink>
            <NavLink to={`/projects/${projectId}/runs`}>Runs</NavLink>
            <NavLink to={`/projects/${projectId}/usage`}>Usage</NavLink>
            <NavLink to={`/projects/${projectId}/budgets`}>Budgets</NavLink>
            <NavLink to={`/projects/${projectId}/policies`}>Policy</NavLink>
            <NavLink to={`/projects/${projectId}/settings`}>Settings</NavLink>
            <NavLink to={`/projects/${projectId}/billing`}>Billing</NavLink>
          </nav>
        )}
        <span className="spacer" />
        {isAdmin && <NavLink to="/admin">Admin</NavLink>}
        <NavLink to="/help">Help</NavLink>
        <NavLink to="/account">{session?.user.name ?? 'Account'}</NavLink>
        <button type="button" className="link" onClick={() => void signOut()}>
          Sign out
        </button>
      </header>
      {projectId && !missing && roleAtLeast(role, 'admin') && (
        <BudgetAlerts key={projectId} projectId={projectId} />
      )}
      {missing ? (
        <section className="page">
          <h1>Project not found</h1>
          <p>It was deleted, or you are no longer a member.</p>
          <Link to="/projects">All projects</Link>
        </section>
      ) : (
        <Outlet />
      )}
    </div>
  );
}
