import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, opendir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { assertKey, type BlobStorage, type ByteRange, type StoredBlob } from './storage';

/**
 * Blobs as files under `root` (DATA_DIR/files). Writes go to `root/tmp` and are renamed into
 * place once complete (same filesystem, so the rename is atomic): a reader never sees half a
 * file, and a crash leaves only a `.part` file for the sweeper.
 */
export function localStorage(root: string): BlobStorage {
  const tmpDir = join(root, 'tmp');
  const pathOf = (key: string) => {
    assertKey(key);
    return join(root, key);
  };

  return {
    kind: 'local',
    async put(key, body) {
      const target = pathOf(key);
      const tmp = join(tmpDir, `${randomUUID()}.part`);
      await mkdir(tmpDir, { recursive: true });
      try {
        await pipeline(body, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }));
        await mkdir(dirname(target), { recursive: true });
        await rename(tmp, target);
      } catch (err) {
        body.destroy();
        await rm(tmp, { force: true });
        throw err;
      }
    },
    async get(key, range?: ByteRange) {
      const path = pathOf(key);
      try {
        await stat(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
      return createReadStream(path, range ? { start: range.start, end: range.end } : {});
    },
    async delete(key) {
      await rm(pathOf(key), { force: true });
    },
    async *list(): AsyncIterable<StoredBlob> {
      yield* walk(root, root);
    },
  };
}

async function* walk(root: string, dir: string): AsyncGenerator<StoredBlob> {
  let handle: Awaited<ReturnType<typeof opendir>>;
  try {
    handle = await opendir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for await (const entry of handle) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      yield* walk(root, path);
    } else if (entry.isFile()) {
      const info = await stat(path).catch(() => null);
      if (info) yield { key: relative(root, path).split(sep).join('/'), modifiedAt: info.mtime };
    }
  }
}
