// The schema barrel: every table, for Drizzle's relational queries and drizzle-kit.

export * from '../events/events.table';
export * from '../lib/rate-limit.table';
export * from '../mail/mail.table';
export * from '../modules/agents/agents.table';
export * from '../modules/api-keys/api-keys.table';
export * from '../modules/audit/audit.table';
export * from '../modules/auth/password-reset.table';
export * from '../modules/auth/sessions.table';
export * from '../modules/billing/billing.table';
export * from '../modules/budgets/budgets.table';
export * from '../modules/chat/chat.table';
export * from '../modules/documents/documents.table';
export * from '../modules/files/files.table';
export * from '../modules/gateway/leases.table';
export * from '../modules/mcp/mcp.table';
export * from '../modules/payments/payments.table';
export * from '../modules/payments/wallets.table';
export * from '../modules/policies/policies.table';
export * from '../modules/projects/projects.table';
export * from '../modules/runs/runs.table';
export * from '../modules/usage/usage.table';
export * from '../modules/users/users.table';
