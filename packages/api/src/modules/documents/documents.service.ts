import { and, desc, eq, sql } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { documentPassages, documents } from './documents.table';

/** Roughly a paragraph or two: small enough to quote, big enough to carry an answer. */
const PASSAGE_CHARS = 1200;

/** Splits on blank lines, packing paragraphs into passages of at most ~PASSAGE_CHARS. */
export function splitPassages(text: string): string[] {
  const paragraphs = text
    .split(/\n\s*\n/)
    .map((p) => p.trim())
    .filter(Boolean);
  const out: string[] = [];
  let current = '';
  for (const p of paragraphs) {
    for (let i = 0; i < p.length; i += PASSAGE_CHARS) {
      const piece = p.slice(i, i + PASSAGE_CHARS);
      if (current && current.length + piece.length + 2 > PASSAGE_CHARS) {
        out.push(current);
        current = '';
      }
      current = current ? `${current}\n\n${piece}` : piece;
    }
  }
  if (current) out.push(current);
  return out;
}

export async function addDocument(opts: {
  db: Db;
  projectId: string;
  name: string;
  content: string;
  fileId?: string | null;
}): Promise<{ id: string; passages: number }> {
  return opts.db.transaction(async (tx) => {
    const [doc] = await tx
      .insert(documents)
      .values({ projectId: opts.projectId, name: opts.name, fileId: opts.fileId ?? null })
      .returning({ id: documents.id });
    if (!doc) throw new Error('insert returned no row');
    const passages = splitPassages(opts.content);
    if (passages.length > 0) {
      await tx.insert(documentPassages).values(
        passages.map((content, ordinal) => ({
          documentId: doc.id,
          projectId: opts.projectId,
          ordinal,
          content,
        })),
      );
    }
    return { id: doc.id, passages: passages.length };
  });
}

export interface Passage {
  documentId: string;
  fileId: string | null;
  name: string;
  content: string;
  rank: number;
}

/**
 * Full-text search over one project's passages. `websearch_to_tsquery` accepts anything a
 * user types; terms are OR-ed so a question matches passages sharing any of its words,
 * ranked by how many and how densely.
 */
export async function searchPassages(opts: {
  db: Db;
  projectId: string;
  query: string;
  limit: number;
}): Promise<Passage[]> {
  const words = opts.query.match(/[\p{L}\p{N}]+/gu) ?? [];
  if (words.length === 0) return [];
  const q = sql`websearch_to_tsquery('english', ${words.join(' or ')})`;
  const rank = sql<number>`ts_rank(${documentPassages.tsv}, ${q})`;
  return opts.db
    .select({
      documentId: documents.id,
      fileId: documents.fileId,
      name: documents.name,
      content: documentPassages.content,
      rank,
    })
    .from(documentPassages)
    .innerJoin(documents, eq(documents.id, documentPassages.documentId))
    .where(
      and(eq(documentPassages.projectId, opts.projectId), sql`${documentPassages.tsv} @@ ${q}`),
    )
    .orderBy(desc(rank), documentPassages.ordinal)
    .limit(opts.limit);
}
