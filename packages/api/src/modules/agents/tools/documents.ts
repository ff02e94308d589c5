import { and, asc, eq } from 'drizzle-orm';
import type { Db } from '../../../db/client';
import { searchPassages } from '../../documents/documents.service';
import { documentPassages, documents } from '../../documents/documents.table';
import { ToolError } from './registry';

/** The same retrieval as grounded chat, scoped to the run's project. */
export async function searchDocuments(opts: {
  db: Db;
  projectId: string;
  query: string;
  limit: number;
}) {
  const passages = await searchPassages(opts);
  return {
    results: passages.map((p) => ({
      documentId: p.documentId,
      name: p.name,
      excerpt: p.content.slice(0, 1000),
    })),
  };
}

const READ_LIMIT = 20_000;

export async function readDocument(opts: { db: Db; projectId: string; documentId: string }) {
  const [doc] = await opts.db
    .select({ id: documents.id, name: documents.name })
    .from(documents)
    // The project condition is the scope: another project's document id reads as missing.
    .where(and(eq(documents.id, opts.documentId), eq(documents.projectId, opts.projectId)));
  if (!doc) throw new ToolError('No document with that id in this project');
  const passages = await opts.db
    .select({ content: documentPassages.content })
    .from(documentPassages)
    .where(eq(documentPassages.documentId, doc.id))
    .orderBy(asc(documentPassages.ordinal));
  const text = passages.map((p) => p.content).join('\n\n');
  return {
    documentId: doc.id,
    name: doc.name,
    text: text.slice(0, READ_LIMIT),
    truncated: text.length > READ_LIMIT,
  };
}
