import { type SQL, sql } from 'drizzle-orm';
import { customType, index, integer, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { files } from '../files/files.table';
import { projects } from '../projects/projects.table';

const tsvector = customType<{ data: string }>({ dataType: () => 'tsvector' });

/** A project's document: an uploaded file's extracted text (fileId set) or text added directly. */
export const documents = pgTable(
  'documents',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    projectId: uuid('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    // Deleting a file deletes its document and, through it, the passages.
    fileId: uuid('file_id').references(() => files.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [index('documents_project_idx').on(t.projectId), index('documents_file_idx').on(t.fileId)],
);

/** Passages of a document, indexed for full-text search (works on PGlite too). */
export const documentPassages = pgTable(
  'document_passages',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    documentId: uuid('document_id')
      .notNull()
      .references(() => documents.id, { onDelete: 'cascade' }),
    projectId: uuid('project_id').notNull(),
    ordinal: integer('ordinal').notNull(),
    content: text('content').notNull(),
    tsv: tsvector('tsv')
      .notNull()
      .generatedAlwaysAs((): SQL => sql`to_tsvector('english', ${documentPassages.content})`),
  },
  (t) => [
    index('document_passages_tsv_idx').using('gin', t.tsv),
    index('document_passages_project_idx').on(t.projectId),
  ],
);
