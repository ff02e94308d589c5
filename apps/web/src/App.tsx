import { useQueryClient } from '@tanstack/react-query';
import { useEffect } from 'react';
import { Navigate, Outlet, Route, Routes, useLocation, useNavigate } from 'react-router';
import { useSession } from './hooks';
import { AccountPage } from './pages/account';
import { ForgotPasswordPage, RegisterPage, ResetPasswordPage, SignInPage } from './pages/auth';
import { ChatPage } from './pages/chat';
import { FilesPage } from './pages/files';
import { HelpPage } from './pages/help';
import { Layout } from './pages/layout';
import { ProjectSettingsPage } from './pages/project-settings';
import { ProjectsHome } from './pages/projects';
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
        </Route>
      </Route>
      <Route path="*" element={<Navigate to="/" replace />} />
    </Routes>
  );
}
