import { NavLink, Outlet } from 'react-router';
import { useIsAdmin } from '../admin/useIsAdmin';

/** The platform admin area; everyone else is told plainly they may not be here. */
export function AdminLayout() {
  const { isAdmin, known } = useIsAdmin();
  if (!isAdmin) {
    if (!known) return <section className="page">Loading…</section>;
    return (
      <section className="page">
        <h1>Not allowed</h1>
        <p role="alert" className="error">
          This area is for platform admins. Your account is not one.
        </p>
      </section>
    );
  }
  return (
    <div className="admin">
      <nav aria-label="Admin pages" className="subnav">
        <NavLink to="/admin/users">Users</NavLink>
        <NavLink to="/admin/audit">Audit log</NavLink>
        <NavLink to="/admin/payments">Payments and credits</NavLink>
      </nav>
      <Outlet />
    </div>
  );
}
