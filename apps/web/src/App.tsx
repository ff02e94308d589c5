import { useQueryClient } from '@tanstack/react-query';
import { useEffect } from 'react';
import { Navigate, Outlet, Route, Routes, useLocation, useNavigate } from 'react-router';
import { useSession } from './hooks';
import { AccountPage } from './pages/account';
import { AdminLayout } from './pages/admin';
import { AdminAuditPage } from './pages/admin-audit';
import { AdminPaymentsPage } from './pages/admin-payments';
import { AdminUsersPage } from './pages/admin-users';
import { AgentsPage } from './pages/agents';
import { AgentEditorPage } from './pages/agents-editor';
import { ForgotPasswordPage, RegisterPage, ResetPasswordPage, SignInPage } from './pages/auth';
import { BillingPage } from './pages/billing';
import { BudgetsPage } from './pages/budgets';
import { ChatPage } from './pages/chat';
import { FilesPage } from './pages/files';
import { HelpPage } from './pages/help';
import { Layout } from './pages/layout';
import { PoliciesPage } from './pages/policies';
import { ProjectSettingsPage } from './pages/project-settings';
import { ProjectsHome } from './pages/projects';
import { RunsPage } from './pages/runs';
import { RunConsolePage } from './pages/runs-console';
import { LazyUsagePage } from './pages/usage-lazy';
import { setSessionEndedHandler } from './trpc';

/** Pages behind sign-in: without a session, go to sign-in and come back afterwards. */
function RequireSession() {
  const session = useSession();
  const location = useLocation();
  if (!session) {
    return <Navigate to="/sign-in" replace state={{ from: location.pathname }} />;
  }
  return <Outlet />;
}

export function App() {
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const session = useSession();

  useEffect(() => {
    setSessionEndedHandler(() => navigate('/sign-in', { replace: true }));
  }, [navigate]);

  // Nothing cached for one account may show for the next.
  const userId = session?.user.id ?? null;
  useEffect(() => {
    if (userId === null) queryClient.clear();
  }, [userId, queryClient]);

  return (
    <Routes>
      <Route path="/sign-in" element={<SignInPage />} />
      <Route path="/register" element={<RegisterPage />} />
      <Route path="/forgot-password" element={<ForgotPasswordPage />} />
      <Route path="/reset-password" element={<ResetPasswordPage />} />
      <Route element={<RequireSession />}>
        <Route element={<Layout />}>
          <Route path="/" element={<Navigate to="/projects" replace />} />
          <Route path="/projects" element={<ProjectsHome />} />
          <Route path="/account" element={<AccountPage />} />
          <Route path="/help" element={<HelpPage />} />
          <Route path="/help/:conversationId" element={<HelpPage />} />
          <Route path="/projects/:projectId" element={<Navigate to="chat" replace />} />
          <Route path="/projects/:projectId/chat" element={<ChatPage />} />
          <Route path="/projects/:projectId/chat/:conversationId" element={<ChatPage />} />
          <Route path="/projects/:projectId/files" element={<FilesPage />} />
          <Route path="/projects/:projectId/settings" element={<ProjectSettingsPage />} />
          <Route path="/projects/:projectId/agents" element={<AgentsPage />} />
          <Route path="/projects/:projectId/agents/new" element={<AgentEditorPage />} />
          <Route path="/projects/:projectId/agents/:agentId" element={<AgentEditorPage />} />
          <Route path="/projects/:projectId/runs" element={<RunsPage />} />
          <Route path="/projects/:projectId/runs/:runId" element={<RunConsolePage />} />
          <Route path="/projects/:projectId/usage" element={<LazyUsagePage />} />
          <Route path="/projects/:projectId/budgets" element={<BudgetsPage />} />
          <Route path="/projects/:projectId/policies" element={<PoliciesPage />} />
          <Route path="/projects/:projectId/billing" element={<BillingPage />} />
          <Route path="/admin" element={<AdminLayout />}>
            <Route index element={<Navigate to="users" replace />} />
            <Route path="users" element={<AdminUsersPage />} />
            <Route path="audit" element={<AdminAuditPage />} />
            <Route path="payments" element={<AdminPaymentsPage />} />
          </Route>
        </Route>
      </Route>
      <Route path="*" element={<Navigate to="/" replace />} />
    </Routes>
  );
}
