// The schema barrel: every table, for Drizzle's relational queries and drizzle-kit.
export * from '../modules/auth/sessions.table';
export * from '../modules/projects/projects.table';
export * from '../modules/users/users.table';
