import { eq } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { agents } from '../agents/agents.table';
import { MCP_PREFIX, mcpToolName } from './names';

/** Rewrites agents' tool names from one server name to another (or drops them: `to` null). */
export async function renameAgentTools(db: Db, projectId: string, from: string, to: string | null) {
  const prefix = `${MCP_PREFIX}${from}__`;
  const rename = (names: string[]) =>
    names.flatMap((n) =>
      n.startsWith(prefix) ? (to === null ? [] : [mcpToolName(to, n.slice(prefix.length))]) : [n],
    );
  const rows = await db
    .select({ id: agents.id, tools: agents.tools, requiresApproval: agents.requiresApproval })
    .from(agents)
    .where(eq(agents.projectId, projectId));
  for (const row of rows) {
    if (!row.tools.some((n) => n.startsWith(prefix))) continue;
    await db
      .update(agents)
      .set({
        tools: rename(row.tools),
        requiresApproval: rename(row.requiresApproval),
        updatedAt: new Date(),
      })
      .where(eq(agents.id, row.id));
  }
}
