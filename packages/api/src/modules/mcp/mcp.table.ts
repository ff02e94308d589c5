import { index, jsonb, pgTable, primaryKey, text, unique, uuid } from 'drizzle-orm/pg-core';
import { ts } from '../../db/columns';
import { projects } from '../projects/projects.table';
import { users } from '../users/users.table';

/** A project's MCP tool server, reached over Streamable HTTP. */
export const mcpServers = pgTable(
  'mcp_servers',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    projectId: uuid('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    url: text('url').notNull(),
    // Header names in the clear (shown to members); their values only sealed (crypto.ts).
    headerNames: jsonb('header_names').$type<string[]>().notNull().default([]),
    headersSealed: text('headers_sealed'),
    // The last discovery's outcome: 'ok', or why the tool list could not be read.
    lastError: text('last_error'),
    toolsRefreshedAt: ts('tools_refreshed_at'),
    createdBy: uuid('created_by').references(() => users.id, { onDelete: 'set null' }),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    unique('mcp_servers_project_name').on(t.projectId, t.name),
    index('mcp_servers_project_idx').on(t.projectId),
  ],
);

/** The tool list a server last reported (tools/list), what agents are offered. */
export const mcpTools = pgTable(
  'mcp_tools',
  {
    serverId: uuid('server_id')
      .notNull()
      .references(() => mcpServers.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    description: text('description').notNull().default(''),
    inputSchema: jsonb('input_schema').$type<Record<string, unknown>>().notNull(),
  },
  (t) => [primaryKey({ columns: [t.serverId, t.name] })],
);

export type McpServerRow = typeof mcpServers.$inferSelect;
export type McpToolRow = typeof mcpTools.$inferSelect;
