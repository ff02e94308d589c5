import { authRouter } from './modules/auth/auth.router';
import { chatRouter } from './modules/chat/chat.router';
import { modelsRouter } from './modules/models/models.router';
import { projectsRouter } from './modules/projects/projects.router';
import { usersRouter } from './modules/users/users.router';
import { router } from './trpc';

export const appRouter = router({
  auth: authRouter,
  users: usersRouter,
  projects: projectsRouter,
  chat: chatRouter,
  models: modelsRouter,
});

export type AppRouter = typeof appRouter;
