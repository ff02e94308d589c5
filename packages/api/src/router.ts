import { auditRouter } from './modules/audit/audit.router';
import { authRouter } from './modules/auth/auth.router';
import { paymentsRouter } from './modules/billing/billing.router';
import { budgetsRouter } from './modules/budgets/budgets.router';
import { chatRouter } from './modules/chat/chat.router';
import { modelsRouter } from './modules/models/models.router';
import { policiesRouter } from './modules/policies/policies.router';
import { projectsRouter } from './modules/projects/projects.router';
import { usageRouter } from './modules/usage/usage.router';
import { usersRouter } from './modules/users/users.router';
import { router } from './trpc';

export const appRouter = router({
  auth: authRouter,
  users: usersRouter,
  projects: projectsRouter,
  chat: chatRouter,
  models: modelsRouter,
  budgets: budgetsRouter,
  policies: policiesRouter,
  usage: usageRouter,
  payments: paymentsRouter,
  audit: auditRouter,
});

export type AppRouter = typeof appRouter;
