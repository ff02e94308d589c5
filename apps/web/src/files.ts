import { describeFailure } from './errors';
import { sessionStore } from './session';
import { client } from './trpc';

export interface UploadedFile {
  id: string;
  name: string;
  mimeType: string;
  size: number;
}

/** A valid access token, refreshed first when it is about to expire. */
async function accessToken(): Promise<string> {
  const session = sessionStore.current();
  if (!session) throw new Error('Sign in first');
  if (Date.parse(session.accessTokenExpiresAt) - Date.now() > 30_000) return session.accessToken;
  // Any authed call refreshes an expired token through the client; this one is cheap.
  await client.models.list.query();
  const fresh = sessionStore.current();
  if (!fresh) throw new Error('Your session ended. Sign in again.');
  return fresh.accessToken;
}

/**
 * files.upload over XMLHttpRequest, for its upload progress events (fetch has none). The
 * body is the same multipart form the client sends.
 */
export async function uploadFile(
  projectId: string,
  file: File,
  onProgress: (fraction: number) => void,
): Promise<UploadedFile> {
  const token = await accessToken();
  const form = new FormData();
  form.set('projectId', projectId);
  form.set('file', file);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/trpc/files.upload');
    xhr.setRequestHeader('authorization', `Bearer ${token}`);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onerror = () => reject(new Error('The upload failed: the connection was lost'));
    xhr.onload = () => {
      let body: {
        result?: { data?: UploadedFile };
        error?: { message?: string; data?: { appCode?: string } };
      } | null = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      const data = body?.result?.data;
      if (xhr.status < 300 && data) {
        onProgress(1);
        resolve(data);
        return;
      }
      const message = body?.error?.message ?? `The upload failed (HTTP ${xhr.status})`;
      reject(new Error(describeFailure(body?.error?.data?.appCode ?? null, message)));
    };
    xhr.send(form);
  });
}

/** Downloads a project file with the bearer token and opens or saves it from a blob URL. */
export async function openFile(fileId: string, name: string, download = false): Promise<void> {
  const token = await accessToken();
  const res = await fetch(`/files/${fileId}`, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) {
    throw new Error(res.status === 404 ? 'That file no longer exists' : `Could not open ${name}`);
  }
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  if (download) a.download = name;
  else a.target = '_blank';
  a.rel = 'noopener';
  document.body.append(a);
  a.click();
  a.remove();
  // Long enough for the new tab or the download to read it.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
