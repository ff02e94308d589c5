import type { Db } from '../../db/client';
import type { Lifecycle } from '../../lib/lifecycle';
import type { BlobStorage } from '../../storage/storage';
import { sweepOrphanBlobs } from './files.service';

const HOUR_MS = 3_600_000;

/**
 * Deletes blobs no file row refers to (a crash between write and insert, deleted projects),
 * hourly. The hour of grace is far longer than any upload request may take.
 */
export function startFileJobs(opts: { life: Lifecycle; db: Db; storage: BlobStorage }): void {
  const { db, storage } = opts;
  opts.life.every(HOUR_MS, 'orphan blob sweep', () =>
    sweepOrphanBlobs({ db, storage, olderThanMs: HOUR_MS }),
  );
}
