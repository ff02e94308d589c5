import {
  createClient,
  memorySessionStore,
  type Session,
  type SmartSpaceClient,
  TRPCClientError,
} from '@smartspace/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './harness';

const MAX = 2 * 1024 * 1024;
let server: TestServer;
let owner: { client: SmartSpaceClient; session: Session };
let projectId: string;

async function signUp(name: string) {
  const client = createClient({ url: `${server.origin}/trpc`, session: memorySessionStore() });
  const session = await client.auth.register.mutate({
    email: `${name}@example.com`,
    password: 'correct horse battery staple',
    name,
  });
  return { client, session };
}

function form(pid: string, content: BlobPart, name: string): FormData {
  const fd = new FormData();
  fd.set('projectId', pid);
  fd.set('file', new Blob([content]), name);
  return fd;
}

const download = (fileId: string, token: string | null, headers: Record<string, string> = {}) =>
  fetch(`${server.origin}/files/${fileId}`, {
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
  });

function appCodeOf(err: unknown): unknown {
  return err instanceof TRPCClientError ? err.data?.appCode : err;
}

beforeAll(async () => {
  server = await startTestServer({ UPLOAD_MAX_BYTES: String(MAX) });
  owner = await signUp('owner');
  projectId = (await owner.client.projects.create.mutate({ name: 'Files' })).id;
});
afterAll(() => server.close());

describe('files.upload over HTTP (multipart through the typed client)', () => {
  it('accepts a file larger than the JSON body limit, up to UPLOAD_MAX_BYTES', async () => {
    const big = Buffer.alloc(1536 * 1024, 'x');
    const f = await owner.client.files.upload.mutate(form(projectId, big, 'big.txt'));
    expect(f).toMatchObject({ name: 'big.txt', mimeType: 'text/plain', size: big.length });
    const list = await owner.client.files.list.query({ projectId });
    expect(list.items.map((i) => i.id)).toContain(f.id);
  });

  it('refuses more than UPLOAD_MAX_BYTES with PAYLOAD_TOO_LARGE files.too_large', async () => {
    const justOver = owner.client.files.upload.mutate(
      form(projectId, Buffer.alloc(MAX + 1), 'a.bin'),
    );
    const err = await justOver.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TRPCClientError);
    expect((err as TRPCClientError<never>).data).toMatchObject({
      code: 'PAYLOAD_TOO_LARGE',
      httpStatus: 413,
      appCode: 'files.too_large',
    });
    // Far over: the body is cut off by the HTTP layer before the whole of it is read.
    const farOver = owner.client.files.upload.mutate(
      form(projectId, Buffer.alloc(MAX * 2), 'b.bin'),
    );
    const err2 = await farOver.catch((e: unknown) => e);
    expect((err2 as TRPCClientError<never>).data).toMatchObject({
      code: 'PAYLOAD_TOO_LARGE',
      httpStatus: 413,
      appCode: 'files.too_large',
    });
  });

  it('a foreign project answers NOT_FOUND', async () => {
    const other = await signUp('other');
    const err = await other.client.files.upload
      .mutate(form(projectId, 'x', 'x.txt'))
      .catch((e: unknown) => e);
    expect(appCodeOf(err)).toBe('projects.not_found');
  });
});

describe('GET /files/:fileId', () => {
  const content = 'Hello, range requests! 0123456789';
  let fileId: string;
  let viewer: Awaited<ReturnType<typeof signUp>>;
  let outsider: Awaited<ReturnType<typeof signUp>>;

  beforeAll(async () => {
    fileId = (await owner.client.files.upload.mutate(form(projectId, content, 'Ünïcödé "q";.txt')))
      .id;
    viewer = await signUp('viewer');
    outsider = await signUp('outsider');
    await owner.client.projects.members.add.mutate({
      projectId,
      email: 'viewer@example.com',
      role: 'viewer',
    });
  });

  it('serves members (owner, viewer); outsiders get 404 like a missing file; no token 401', async () => {
    for (const s of [owner.session, viewer.session]) {
      const res = await download(fileId, s.accessToken);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(content);
    }
    const outside = await download(fileId, outsider.session.accessToken);
    const missing = await download(crypto.randomUUID(), outsider.session.accessToken);
    expect([outside.status, missing.status]).toEqual([404, 404]);
    expect(await outside.json()).toEqual(await missing.json());
    expect((await download(fileId, null)).status).toBe(401);
    expect((await download(fileId, 'not-a-token')).status).toBe(401);
    expect((await download('../../etc/passwd', owner.session.accessToken)).status).toBe(404);
  });

  it('sends safe headers: sniffed type, RFC 6266 disposition, ETag, nosniff, sandbox', async () => {
    const res = await download(fileId, owner.session.accessToken);
    const f = (await owner.client.files.list.query({ projectId })).items.find(
      (i) => i.id === fileId,
    );
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(res.headers.get('content-disposition')).toBe(
      `inline; filename="Unicode _q__.txt"; filename*=UTF-8''%C3%9Cn%C3%AFc%C3%B6d%C3%A9%20%22q%22%3B.txt`,
    );
    expect(res.headers.get('etag')).toBe(`"${f?.sha256}"`);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-security-policy')).toBe('sandbox');
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    const again = await download(fileId, owner.session.accessToken, {
      'if-none-match': `"${f?.sha256}"`,
    });
    expect(again.status).toBe(304);

    const html = await owner.client.files.upload.mutate(
      form(projectId, '<html><body><script>alert(document.cookie)</script></body></html>', 'x.png'),
    );
    const active = await download(html.id, owner.session.accessToken);
    expect(active.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(active.headers.get('content-disposition')).toMatch(/^attachment;/);
    expect(active.headers.get('content-security-policy')).toBe('sandbox');
  });

  it('answers single byte ranges with 206 and exact bodies; unsatisfiable with 416', async () => {
    const size = Buffer.byteLength(content);
    const cases: [string, number, number][] = [
      ['bytes=0-4', 0, 4],
      ['bytes=7-', 7, size - 1],
      ['bytes=-10', size - 10, size - 1],
      ['bytes=5-99999', 5, size - 1],
    ];
    for (const [range, start, end] of cases) {
      const res = await download(fileId, viewer.session.accessToken, { range });
      expect(res.status, range).toBe(206);
      expect(res.headers.get('content-range')).toBe(`bytes ${start}-${end}/${size}`);
      expect(res.headers.get('content-length')).toBe(String(end - start + 1));
      expect(await res.text()).toBe(content.slice(start, end + 1));
    }
    for (const range of [`bytes=${size}-`, 'bytes=-0']) {
      const res = await download(fileId, viewer.session.accessToken, { range });
      expect(res.status, range).toBe(416);
      expect(res.headers.get('content-range')).toBe(`bytes */${size}`);
    }
    // Several ranges, or a stale If-Range: the whole file.
    const multi = await download(fileId, viewer.session.accessToken, { range: 'bytes=0-1,4-5' });
    expect([multi.status, await multi.text()]).toEqual([200, content]);
    const stale = await download(fileId, viewer.session.accessToken, {
      range: 'bytes=0-1',
      'if-range': '"old"',
    });
    expect([stale.status, await stale.text()]).toEqual([200, content]);
  });

  it('HEAD gives the headers and no body', async () => {
    const res = await fetch(`${server.origin}/files/${fileId}`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${owner.session.accessToken}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(Buffer.byteLength(content)));
    expect(await res.text()).toBe('');
  });
});

describe('uploaded text grounds chat', () => {
  it('a grounded reply cites the uploaded file; deleting it removes the passages', async () => {
    const md =
      '# Travel policy\n\nTrain travel is preferred for trips under six hours; flights need a manager approval.\n';
    const file = await owner.client.files.upload.mutate(form(projectId, md, 'travel.md'));
    const conv = await owner.client.chat.conversations.create.mutate({
      projectId,
      grounded: true,
      model: 'mock-echo',
    });
    const ask = async (content: string) => {
      const { replyId } = await owner.client.chat.send.mutate({ conversationId: conv.id, content });
      for (let i = 0; i < 200; i++) {
        const page = await owner.client.chat.messages.list.query({
          conversationId: conv.id,
          limit: 100,
        });
        const reply = page.items.find((m) => m.id === replyId);
        if (reply && reply.status !== 'streaming') return reply;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error('reply did not finish');
    };
    const reply = await ask('Do flights need approval for travel?');
    expect(reply.status).toBe('complete');
    expect(reply.citations).toEqual([
      expect.objectContaining({ fileId: file.id, name: 'travel.md' }),
    ]);

    await owner.client.files.delete.mutate({ fileId: file.id });
    const after = await ask('Do flights need approval for travel?');
    expect(after.citations).toEqual([]);
    expect((await download(file.id, owner.session.accessToken)).status).toBe(404);
  });
});
