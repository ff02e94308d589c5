import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { and, eq, inArray } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { type Actor, auditedBy } from '../../lib/actor';
import { AppError } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import { keyset, type Page, toPage } from '../../lib/pagination';
import { type BlobStorage, storageKeyFor } from '../../storage/storage';
import { recordAudit } from '../audit/audit.service';
import { addDocument } from '../documents/documents.service';
import { documents } from '../documents/documents.table';
import { projectMembers } from '../projects/projects.table';
import { EXTRACT_MAX_BYTES, extractFileText } from './extract';
import { type StoredFile, toStoredFile } from './files.dto';
import { files } from './files.table';
import { sanitizeFileName } from './names';
import { detectType, type Inspection, inspect, tooLarge } from './sniff';

/**
 * Stores an upload: bytes to blob storage (streamed, counted, hashed, sniffed), then, in one
 * transaction, the row, its extracted text as a document and the audit event. Either both
 * the blob and the row exist afterwards or neither does: a failed write leaves no row, a
 * failed transaction deletes the blob. A crash between the two leaves an unreferenced blob,
 * which `sweepOrphanBlobs` removes.
 */
export async function uploadFile(opts: {
  db: Db;
  storage: BlobStorage;
  log: Logger;
  projectId: string;
  actor: Actor;
  file: Blob;
  fileName: string;
  maxBytes: number;
}): Promise<StoredFile> {
  if (opts.file.size > opts.maxBytes) throw tooLarge(opts.maxBytes);
  if (opts.file.size === 0) throw new AppError('files.empty', 'The file is empty');
  const name = sanitizeFileName(opts.fileName);
  const id = randomUUID();
  const storageKey = storageKeyFor(id);

  const probe: { result?: Inspection } = {};
  const source = opts.file.stream() as unknown as AsyncIterable<Uint8Array>;
  try {
    await opts.storage.put(storageKey, Readable.from(inspect(source, opts.maxBytes, probe)));
  } catch (err) {
    await opts.storage.delete(storageKey).catch(() => {});
    throw err;
  }
  try {
    const inspection = probe.result;
    if (!inspection) throw new Error('storage finished without reading the whole upload');
    let mimeType = await detectType(inspection, name);
    let text: string | null = null;
    if (inspection.size <= EXTRACT_MAX_BYTES) {
      try {
        const extracted = await extractFileText(
          mimeType,
          new Uint8Array(await opts.file.arrayBuffer()),
        );
        mimeType = extracted.mimeType;
        text = extracted.text;
      } catch (err) {
        // A damaged PDF is still a file the project may keep; it just is not searchable.
        opts.log.warn({ err, fileId: id, mimeType }, 'text extraction failed');
      }
    }
    const row = await opts.db.transaction(async (tx) => {
      const [inserted] = await tx
        .insert(files)
        .values({
          id,
          projectId: opts.projectId,
          uploadedBy: opts.actor.userId,
          name,
          mimeType,
          size: inspection.size,
          sha256: inspection.sha256,
          storageKey,
        })
        .returning();
      if (!inserted) throw new Error('insert returned no row');
      if (text?.trim()) {
        await addDocument({ db: tx, projectId: opts.projectId, name, content: text, fileId: id });
      }
      await recordAudit({
        db: tx,
        ...auditedBy(opts.actor),
        action: 'files.uploaded',
        projectId: opts.projectId,
        target: id,
        metadata: { name, mimeType, size: inspection.size, sha256: inspection.sha256 },
      });
      return inserted;
    });
    return toStoredFile(row);
  } catch (err) {
    await opts.storage.delete(storageKey).catch((e: unknown) => {
      opts.log.error({ err: e, storageKey }, 'could not delete the blob of a failed upload');
    });
    throw err;
  }
}

/** Newest first. */
export async function listFiles(opts: {
  db: Db;
  projectId: string;
  cursor?: string | undefined;
  limit: number;
}): Promise<Page<StoredFile>> {
  const page = keyset({
    at: files.createdAt,
    id: files.id,
    cursor: opts.cursor,
    direction: 'desc',
  });
  const rows = await opts.db
    .select()
    .from(files)
    .where(and(eq(files.projectId, opts.projectId), page.where))
    .orderBy(...page.orderBy)
    .limit(opts.limit + 1);
  return toPage(rows, opts.limit, (r) => ({ at: r.createdAt, id: r.id }), toStoredFile);
}

/**
 * Removes the row, its document and passages, and the audit event in one transaction, then
 * the blob. Should the blob delete fail, the blob is an orphan the sweeper removes; the
 * reverse order could leave a row whose bytes are gone.
 */
export async function deleteFile(opts: {
  db: Db;
  storage: BlobStorage;
  log: Logger;
  fileId: string;
  actor: Actor;
}): Promise<{ ok: true }> {
  const row = await opts.db.transaction(async (tx) => {
    const [deleted] = await tx.delete(files).where(eq(files.id, opts.fileId)).returning();
    if (!deleted) throw new AppError('files.not_found', 'No such file');
    // Passages go with their document (ON DELETE CASCADE).
    await tx.delete(documents).where(eq(documents.fileId, deleted.id));
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'files.deleted',
      projectId: deleted.projectId,
      target: deleted.id,
      metadata: { name: deleted.name, sha256: deleted.sha256 },
    });
    return deleted;
  });
  await opts.storage.delete(row.storageKey).catch((err: unknown) => {
    opts.log.error({ err, storageKey: row.storageKey }, 'blob delete failed; left to the sweeper');
  });
  return { ok: true };
}

/** The file if `userId` may read it (any member of its project), else null: as if missing. */
export async function findReadableFile(opts: {
  db: Db;
  fileId: string;
  userId: string;
  /** Only a file of this project (a project API key reads its own project's files only). */
  projectId?: string | undefined;
}): Promise<(StoredFile & { storageKey: string }) | null> {
  const [row] = await opts.db
    .select({ file: files })
    .from(files)
    .innerJoin(
      projectMembers,
      and(eq(projectMembers.projectId, files.projectId), eq(projectMembers.userId, opts.userId)),
    )
    .where(
      and(
        eq(files.id, opts.fileId),
        opts.projectId ? eq(files.projectId, opts.projectId) : undefined,
      ),
    );
  return row ? { ...toStoredFile(row.file), storageKey: row.file.storageKey } : null;
}

/**
 * Deletes blobs no row refers to (a crash between write and insert, a deleted project, a
 * failed blob delete) once older than `olderThanMs`, so uploads in flight are never touched.
 */
export async function sweepOrphanBlobs(opts: {
  db: Db;
  storage: BlobStorage;
  olderThanMs: number;
}): Promise<{ deleted: number }> {
  const cutoff = Date.now() - opts.olderThanMs;
  let deleted = 0;
  let batch: string[] = [];
  const flush = async () => {
    const known = await opts.db
      .select({ key: files.storageKey })
      .from(files)
      .where(inArray(files.storageKey, batch));
    const referenced = new Set(known.map((k) => k.key));
    for (const key of batch) {
      if (referenced.has(key)) continue;
      await opts.storage.delete(key);
      deleted += 1;
    }
    batch = [];
  };
  for await (const blob of opts.storage.list()) {
    if (blob.modifiedAt.getTime() >= cutoff) continue;
    batch.push(blob.key);
    if (batch.length >= 500) await flush();
  }
  if (batch.length > 0) await flush();
  return { deleted };
}
