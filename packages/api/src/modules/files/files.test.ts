import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../../index';
import { localStorage } from '../../storage/local';
import type { BlobStorage, StoredBlob } from '../../storage/storage';
import { createTestApi, failure, type TestApi } from '../../testing';
import { auditEvents } from '../audit/audit.table';
import { searchPassages } from '../documents/documents.service';
import { documentPassages, documents } from '../documents/documents.table';
import { projects } from '../projects/projects.table';
import { sweepOrphanBlobs } from './files.service';
import { files } from './files.table';

/**
 * Storage that really fails: the wrapped local store writes part of the upload, then the
 * stream breaks (`failAfterBytes`), or the write succeeds and the project is deleted before
 * the row is inserted (`deleteProjectAfterPut`), so the insert hits a real FK violation.
 */
const dir = mkdtempSync(join(tmpdir(), 'smartspace-files-'));
const disk = localStorage(dir);
const faults: { failAfterBytes?: number; deleteProjectAfterPut?: string } = {};
const storage: BlobStorage = {
  kind: 'local',
  async put(key, body) {
    const failAfter = faults.failAfterBytes;
    if (failAfter === undefined) {
      await disk.put(key, body);
      if (faults.deleteProjectAfterPut) {
        await t.api.deps.db.delete(projects).where(eq(projects.id, faults.deleteProjectAfterPut));
      }
      return;
    }
    const limit = failAfter;
    async function* breaking() {
      let seen = 0;
      for await (const chunk of body) {
        seen += (chunk as Buffer).length;
        if (seen > limit) throw new Error('disk full');
        yield chunk as Buffer;
      }
    }
    try {
      await disk.put(key, Readable.from(breaking()));
    } finally {
      body.destroy();
    }
  },
  get: (key, range) => disk.get(key, range),
  delete: (key) => disk.delete(key),
  list: () => disk.list(),
};

const MAX = 256 * 1024;
let t: TestApi;
let owner: Session;
let projectId: string;
const o = () => t.caller(owner.accessToken);

beforeAll(async () => {
  t = await createTestApi({ UPLOAD_MAX_BYTES: String(MAX) }, { storage });
  owner = await t.signUp('File Owner');
  projectId = (await o().projects.create({ name: 'Files' })).id;
});
afterAll(() => t.close());

function form(fields: { projectId?: string; file?: Blob; name?: string }): FormData {
  const fd = new FormData();
  if (fields.projectId) fd.set('projectId', fields.projectId);
  if (fields.file) fd.set('file', fields.file, fields.name ?? 'file.bin');
  return fd;
}

const upload = (content: BlobPart, name: string, pid = projectId) =>
  o().files.upload(form({ projectId: pid, file: new Blob([content]), name }));

async function blobs(): Promise<StoredBlob[]> {
  const out: StoredBlob[] = [];
  for await (const b of disk.list()) out.push(b);
  return out;
}

async function rowsFor(fileId: string) {
  const db = t.api.deps.db;
  return {
    files: await db.select().from(files).where(eq(files.id, fileId)),
    documents: await db.select().from(documents).where(eq(documents.fileId, fileId)),
    audit: await db.select().from(auditEvents).where(eq(auditEvents.target, fileId)),
  };
}

describe('files.upload', () => {
  it('stores the bytes, hashes them, sniffs the type and indexes the text', async () => {
    const text = '# Handbook\n\nThe espresso machine is descaled every Friday.\n';
    const f = await upload(text, 'handbook.md');
    expect(f).toMatchObject({
      name: 'handbook.md',
      mimeType: 'text/markdown',
      size: Buffer.byteLength(text),
    });
    expect(f.sha256).toBe(createHash('sha256').update(text).digest('hex'));
    const stored = await t.api.deps.db.select().from(files).where(eq(files.id, f.id));
    const body = await disk.get(stored[0]?.storageKey ?? '');
    const chunks: Buffer[] = [];
    for await (const c of body ?? []) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe(text);
    const hits = await searchPassages({
      db: t.api.deps.db,
      projectId,
      query: 'espresso descaled',
      limit: 5,
    });
    expect(hits.map((h) => ({ fileId: h.fileId, name: h.name }))).toEqual([
      { fileId: f.id, name: 'handbook.md' },
    ]);
    const { audit } = await rowsFor(f.id);
    expect(audit.map((a) => a.action)).toEqual(['files.uploaded']);
    expect((await o().files.list({ projectId })).items.map((i) => i.id)).toContain(f.id);
  });

  it('sniffs from the bytes, never from the name', async () => {
    expect((await upload('just words, not a picture', 'photo.png')).mimeType).toBe('text/plain');
    const pe = Buffer.alloc(512);
    pe.write('MZ', 0, 'latin1');
    pe.writeUInt32LE(0x80, 0x3c);
    pe.write('PE\0\0', 0x80, 'latin1');
    expect((await upload(pe, 'invoice.pdf')).mimeType).toBe('application/x-msdownload');
    const elf = Buffer.concat([Buffer.from('7f454c46020101', 'hex'), Buffer.alloc(200, 1)]);
    expect((await upload(elf, 'notes.txt')).mimeType).toBe('application/x-elf');
    const html = '<!DOCTYPE html><html><body><p>Hi</p><script>steal()</script></body></html>';
    expect((await upload(html, 'readme.txt')).mimeType).toBe('text/html');
    const svg = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>';
    expect((await upload(svg, 'logo.png')).mimeType).toBe('image/svg+xml');
    expect((await upload('{"a": [1, 2]}', 'data.json')).mimeType).toBe('application/json');
    expect((await upload('{not json', 'broken.json')).mimeType).toBe('text/plain');
    expect((await upload('a,b\n1,2\n', 'table.csv')).mimeType).toBe('text/csv');
  });

  it('indexes HTML text without markup or scripts', async () => {
    const html =
      '<html><head><style>.x{color:red}</style><script>var zebracode = 1;</script></head>' +
      '<body><h1>Onboarding</h1><p>Badges are collected at the <b>reception</b> desk.</p></body></html>';
    const f = await upload(html, 'page.html');
    const passages = await t.api.deps.db
      .select({ content: documentPassages.content })
      .from(documentPassages)
      .innerJoin(documents, eq(documents.id, documentPassages.documentId))
      .where(eq(documents.fileId, f.id));
    const text = passages.map((p) => p.content).join('\n');
    expect(text).toContain('Badges are collected at the reception desk.');
    expect(text).not.toMatch(/zebracode|color:red|<\w/);
  });

  it('sanitises names: no paths, no control or bidi characters, bounded length', async () => {
    expect((await upload('x', '../../etc/passwd')).name).toBe('passwd');
    expect((await upload('x', '..\\..\\windows\\win.ini')).name).toBe('win.ini');
    expect((await upload('x', 'evil\u202Etxt.exe')).name).toBe('eviltxt.exe');
    expect((await upload('x', 'a\u0000b\nc.txt')).name).toBe('abc.txt');
    expect((await upload('x', '..')).name).toBe('file');
    const long = await upload('x', `${'é'.repeat(300)}.txt`);
    expect([...long.name]).toHaveLength(200);
    expect(long.name.endsWith('é.txt')).toBe(true);
    const keys = (await t.api.deps.db.select({ k: files.storageKey }).from(files)).map((r) => r.k);
    for (const k of keys) expect(k).toMatch(/^[0-9a-f]{2}\/[0-9a-f]{2}\/[0-9a-f-]{36}$/);
  });

  it('refuses files over UPLOAD_MAX_BYTES and empty files, leaving nothing', async () => {
    const before = (await blobs()).length;
    expect(await failure(upload(Buffer.alloc(MAX + 1, 97), 'big.txt'))).toEqual({
      code: 'PAYLOAD_TOO_LARGE',
      appCode: 'files.too_large',
    });
    expect(await failure(upload('', 'empty.txt'))).toEqual({
      code: 'BAD_REQUEST',
      appCode: 'files.empty',
    });
    expect((await upload(Buffer.alloc(MAX, 97), 'exact.txt')).size).toBe(MAX);
    expect((await blobs()).length).toBe(before + 1);
  });

  it('checks input and membership: missing fields, foreign project, viewers', async () => {
    expect(await failure(o().files.upload(form({ projectId })))).toMatchObject({
      code: 'BAD_REQUEST',
    });
    const stranger = await t.signUp('Stranger');
    const s = t.caller(stranger.accessToken);
    const fd = form({ projectId, file: new Blob(['x']), name: 'x.txt' });
    expect(await failure(s.files.upload(fd))).toEqual({
      code: 'NOT_FOUND',
      appCode: 'projects.not_found',
    });
    await o().projects.members.add({ projectId, email: stranger.user.email, role: 'viewer' });
    expect(await failure(s.files.upload(fd))).toEqual({
      code: 'FORBIDDEN',
      appCode: 'projects.role_insufficient',
    });
    expect(await failure(t.caller(null).files.upload(fd))).toMatchObject({ code: 'UNAUTHORIZED' });
  });
});

describe('consistency between storage and database', () => {
  it('a storage failure midway leaves no blob, no temp file, no row', async () => {
    const before = await blobs();
    const rows = await t.api.deps.db.select({ id: files.id }).from(files);
    faults.failAfterBytes = 64 * 1024;
    try {
      const err = await upload(Buffer.alloc(200 * 1024, 98), 'doomed.txt').catch((e) => e);
      expect(err).toMatchObject({ code: 'INTERNAL_SERVER_ERROR' });
    } finally {
      delete faults.failAfterBytes;
    }
    expect(await blobs()).toEqual(before);
    expect(await t.api.deps.db.select({ id: files.id }).from(files)).toEqual(rows);
  });

  it('a failed insert deletes the blob it wrote', async () => {
    const doomed = (await o().projects.create({ name: 'Doomed' })).id;
    const before = await blobs();
    faults.deleteProjectAfterPut = doomed;
    try {
      const err = await upload('orphan to be', 'orphan.txt', doomed).catch((e) => e);
      expect(err).toMatchObject({ code: 'INTERNAL_SERVER_ERROR' });
    } finally {
      delete faults.deleteProjectAfterPut;
    }
    expect(await blobs()).toEqual(before);
  });
});

describe('files.delete', () => {
  it('removes the row, the document, its passages and the blob; audited', async () => {
    const f = await upload('Quarterly zeppelin maintenance schedule.', 'zeppelin.txt');
    const search = () =>
      searchPassages({ db: t.api.deps.db, projectId, query: 'zeppelin', limit: 5 });
    expect(await search()).toHaveLength(1);
    const before = (await blobs()).length;
    expect(await o().files.delete({ fileId: f.id })).toEqual({ ok: true });
    expect(await search()).toEqual([]);
    const rows = await rowsFor(f.id);
    expect(rows.files).toEqual([]);
    expect(rows.documents).toEqual([]);
    expect(rows.audit.map((a) => a.action).sort()).toEqual(['files.deleted', 'files.uploaded']);
    expect((await blobs()).length).toBe(before - 1);
    expect(await failure(o().files.delete({ fileId: f.id }))).toEqual({
      code: 'NOT_FOUND',
      appCode: 'files.not_found',
    });
  });

  it('needs the admin role', async () => {
    const f = await upload('members cannot delete this', 'keep.txt');
    const member = await t.signUp('Member');
    await o().projects.members.add({ projectId, email: member.user.email, role: 'member' });
    expect(await failure(t.caller(member.accessToken).files.delete({ fileId: f.id }))).toEqual({
      code: 'FORBIDDEN',
      appCode: 'projects.role_insufficient',
    });
  });
});

describe('orphan sweeper', () => {
  it('deletes old unreferenced blobs and keeps referenced ones', async () => {
    const kept = await upload('referenced', 'kept.txt');
    await disk.put('aa/bb/aabbcccc-0000-4000-8000-000000000000', Readable.from(['lost']));
    const tooYoung = await sweepOrphanBlobs({ db: t.api.deps.db, storage, olderThanMs: 60_000 });
    expect(tooYoung.deleted).toBe(0);
    const swept = await sweepOrphanBlobs({ db: t.api.deps.db, storage, olderThanMs: -1000 });
    expect(swept.deleted).toBe(1);
    const keys = (await blobs()).map((b) => b.key);
    expect(keys).not.toContain('aa/bb/aabbcccc-0000-4000-8000-000000000000');
    const [row] = await t.api.deps.db.select().from(files).where(eq(files.id, kept.id));
    expect(keys).toContain(row?.storageKey);
  });
});
