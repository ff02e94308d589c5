import { agentsRouter } from './modules/agents/agents.router';
import { apiKeysRouter } from './modules/api-keys/api-keys.router';
import { auditRouter } from './modules/audit/audit.router';
import { authRouter } from './modules/auth/auth.router';
import { budgetsRouter } from './modules/budgets/budgets.router';
import { chatRouter } from './modules/chat/chat.router';
import { filesRouter } from './modules/files/files.router';
import { helpRouter } from './modules/help/help.router';
import { mcpRouter } from './modules/mcp/mcp.router';
import { modelsRouter } from './modules/models/models.router';
import { paymentsRouter } from './modules/payments/payments.router';
import { walletsRouter } from './modules/payments/wallets.router';
import { policiesRouter } from './modules/policies/policies.router';
import { projectsRouter } from './modules/projects/projects.router';
import { runsRouter } from './modules/runs/runs.router';
import { usageRouter } from './modules/usage/usage.router';
import { usersRouter } from './modules/users/users.router';
import { router } from './trpc';

export const appRouter = router({
  auth: authRouter,
  users: usersRouter,
  projects: projectsRouter,
  apiKeys: apiKeysRouter,
  chat: chatRouter,
  agents: agentsRouter,
  mcp: mcpRouter,
  runs: runsRouter,
  models: modelsRouter,
  budgets: budgetsRouter,
  policies: policiesRouter,
  usage: usageRouter,
  payments: paymentsRouter,
  wallets: walletsRouter,
  audit: auditRouter,
  files: filesRouter,
  help: helpRouter,
});

export type AppRouter = typeof appRouter;
