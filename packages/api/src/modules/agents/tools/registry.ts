import { z } from 'zod';
import type { Db } from '../../../db/client';
import { CalcError, evaluate } from './calculator';
import { readDocument, searchDocuments } from './documents';

/** What a tool may touch: the run's project, nothing more. */
export interface ToolScope {
  db: Db;
  projectId: string;
  runId: string;
}

export interface Tool<I extends z.ZodType = z.ZodType> {
  name: string;
  description: string;
  input: I;
  run(input: z.output<I>, scope: ToolScope): Promise<unknown>;
}

/** A failure the model should see and may correct (not a crash of the run). */
export class ToolError extends Error {}

function tool<I extends z.ZodType>(t: Tool<I>): Tool<I> {
  return t;
}

/** The built-in catalogue. Adding a tool is one entry here (or one file imported here). */
export const builtinTools: Tool[] = [
  tool({
    name: 'calculator',
    description:
      'Evaluates an arithmetic expression: + - * / % ^, parentheses, sqrt, abs, round, floor, ceil, log, log10, exp, min, max, pow, pi, e.',
    input: z.object({ expression: z.string().min(1).max(500) }),
    async run({ expression }) {
      try {
        return { result: evaluate(expression) };
      } catch (e) {
        if (e instanceof CalcError) throw new ToolError(e.message);
        throw e;
      }
    },
  }),
  tool({
    name: 'current_time',
    description: 'The current date and time in UTC (ISO 8601) and as a Unix timestamp.',
    input: z.object({}),
    async run() {
      const now = new Date();
      return { iso: now.toISOString(), unix: Math.floor(now.getTime() / 1000) };
    },
  }),
  tool({
    name: 'search_documents',
    description:
      "Full-text search over this project's documents; returns the best passages with their document id and name.",
    input: z.object({
      query: z.string().min(1).max(500),
      limit: z.number().int().min(1).max(10).default(5),
    }),
    run: ({ query, limit }, scope) => searchDocuments({ ...scope, query, limit }),
  }),
  tool({
    name: 'read_document',
    description:
      'Reads a document of this project by id (from search_documents), up to 20,000 characters.',
    input: z.object({ documentId: z.uuid() }),
    run: ({ documentId }, scope) => readDocument({ ...scope, documentId }),
  }),
];

const byName = new Map(builtinTools.map((t) => [t.name, t]));

export function builtinTool(name: string): Tool | undefined {
  return byName.get(name);
}

export function toolCatalogue() {
  return builtinTools.map((t) => ({
    name: t.name,
    description: t.description,
    inputSchema: z.toJSONSchema(t.input, { io: 'input' }) as Record<string, unknown>,
  }));
}

export const HANDOFF_PREFIX = 'handoff_to_';

/** Tool names allow [a-zA-Z0-9_-]{1,64}: the agent's name, made safe, else its id. */
export function handoffToolName(agent: { id: string; name: string }): string {
  const safe = agent.name
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, 40);
  return `${HANDOFF_PREFIX}${safe || agent.id.slice(0, 8)}`;
}
