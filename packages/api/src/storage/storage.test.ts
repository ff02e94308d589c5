import { mkdtempSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config';
import { localStorage } from './local';
import { type BlobStorage, createStorage, storageKeyFor } from './storage';

/**
 * The BlobStorage contract, run against the local disk store. The S3 store implements the
 * same contract through the AWS SDK; no S3-compatible server is available offline, so it is
 * not exercised here.
 */
const root = mkdtempSync(join(tmpdir(), 'smartspace-storage-'));
const storage: BlobStorage = localStorage(root);

async function read(s: Readable | null): Promise<string | null> {
  if (!s) return null;
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

async function keys(): Promise<string[]> {
  const out: string[] = [];
  for await (const b of storage.list()) out.push(b.key);
  return out.sort();
}

describe('local BlobStorage', () => {
  const key = storageKeyFor('0123abcd-0000-4000-8000-000000000001');

  it('keys are sharded by id', () => {
    expect(key).toBe('01/23/0123abcd-0000-4000-8000-000000000001');
  });

  it('puts, gets whole and ranged, lists and deletes (idempotently)', async () => {
    await storage.put(key, Readable.from([Buffer.from('hello '), Buffer.from('world')]));
    expect(await read(await storage.get(key))).toBe('hello world');
    expect(await read(await storage.get(key, { start: 6, end: 10 }))).toBe('world');
    expect(await keys()).toEqual([key]);
    await storage.delete(key);
    await storage.delete(key);
    expect(await storage.get(key)).toBeNull();
    expect(await keys()).toEqual([]);
  });

  it('a failing stream leaves nothing under the key and no temp file', async () => {
    async function* broken() {
      yield Buffer.alloc(100_000, 1);
      throw new Error('client went away');
    }
    await expect(storage.put(key, Readable.from(broken()))).rejects.toThrow('client went away');
    expect(await storage.get(key)).toBeNull();
    expect(await keys()).toEqual([]);
    expect(await readdir(join(root, 'tmp'))).toEqual([]);
  });

  it('refuses keys that are not generated ids', async () => {
    for (const bad of ['../../etc/passwd', '01/23/../../x', '/etc/passwd', 'a/b/c']) {
      await expect(storage.put(bad, Readable.from(['x']))).rejects.toThrow('invalid storage key');
      await expect(storage.get(bad)).rejects.toThrow('invalid storage key');
      await expect(storage.delete(bad)).rejects.toThrow('invalid storage key');
    }
  });
});

describe('createStorage', () => {
  it('loads the S3 store on first use, and its failures reach the caller', async () => {
    const config = loadConfig({
      NODE_ENV: 'test',
      JWT_SECRET: 'storage-test-secret-that-is-long-enough-0123456789',
      S3_BUCKET: 'smartspace-test',
      // Nothing listens on port 9: the SDK's request fails to connect.
      S3_ENDPOINT: 'http://127.0.0.1:9',
      S3_REGION: 'us-east-1',
      S3_ACCESS_KEY_ID: 'test',
      S3_SECRET_ACCESS_KEY: 'test',
      S3_FORCE_PATH_STYLE: 'true',
    });
    const s3 = createStorage(config.files);
    expect(s3.kind).toBe('s3');
    await expect(
      s3.delete(storageKeyFor('0123abcd-0000-4000-8000-000000000009')),
    ).rejects.toThrow();
    expect(
      createStorage(loadConfig({ NODE_ENV: 'test', JWT_SECRET: 'x'.repeat(40) }).files).kind,
    ).toBe('local');
  });
});
