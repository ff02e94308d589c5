import { authRouter } from './modules/auth/auth.router';
import { projectsRouter } from './modules/projects/projects.router';
import { usersRouter } from './modules/users/users.router';
import { router } from './trpc';

export const appRouter = router({
  auth: authRouter,
  users: usersRouter,
  projects: projectsRouter,
});

export type AppRouter = typeof appRouter;
