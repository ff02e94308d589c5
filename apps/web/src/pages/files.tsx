import { useInfiniteQuery, useMutation, useQueryClient } from '@tanstack/react-query';
import { useRef, useState } from 'react';
import { errorMessage } from '../errors';
import { formatBytes, openFile, uploadFile } from '../files';
import { roleAtLeast, useCurrentProject } from '../hooks';
import { useTRPC } from '../trpc';
import { ErrorText } from './auth';

export function FilesPage() {
  const { projectId, role } = useCurrentProject();
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const files = useInfiniteQuery(
    trpc.files.list.infiniteQueryOptions(
      { projectId, limit: 50 },
      { getNextPageParam: (page) => page.nextCursor ?? undefined },
    ),
  );
  const refresh = () => queryClient.invalidateQueries({ queryKey: trpc.files.list.pathKey() });
  const remove = useMutation(trpc.files.delete.mutationOptions({ onSuccess: refresh }));
  const [progress, setProgress] = useState<{ name: string; fraction: number } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const input = useRef<HTMLInputElement>(null);

  const upload = async (list: FileList | null) => {
    setError(null);
    for (const file of Array.from(list ?? [])) {
      try {
        setProgress({ name: file.name, fraction: 0 });
        await uploadFile(projectId, file, (fraction) => setProgress({ name: file.name, fraction }));
      } catch (e) {
        setError(errorMessage(e));
      }
    }
    setProgress(null);
    if (input.current) input.current.value = '';
    await refresh();
  };

  return (
    <section className="page">
      <h1>Files</h1>
      {roleAtLeast(role, 'member') && (
        <div className="row">
          <label className="field inline">
            <span>Upload files</span>
            <input ref={input} type="file" multiple onChange={(e) => void upload(e.target.files)} />
          </label>
        </div>
      )}
      {progress && (
        <p>
          <label>
            Uploading {progress.name}{' '}
            <progress
              max={1}
              value={progress.fraction}
              aria-label={`Upload progress of ${progress.name}`}
            />
          </label>
        </p>
      )}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <ErrorText error={files.error ?? remove.error} />
      <table className="table">
        <thead>
          <tr>
            <th>Name</th>
            <th>Type</th>
            <th>Size</th>
            <th>Uploaded</th>
            <th>Actions</th>
          </tr>
        </thead>
        <tbody>
          {files.data?.pages.flatMap((p) =>
            p.items.map((f) => (
              <tr key={f.id}>
                <td>{f.name}</td>
                <td>{f.mimeType}</td>
                <td>{formatBytes(f.size)}</td>
                <td>{new Date(f.createdAt).toLocaleString()}</td>
                <td className="row">
                  <button
                    type="button"
                    className="link"
                    aria-label={`Download ${f.name}`}
                    onClick={() =>
                      openFile(f.id, f.name, true).catch((e: unknown) => setError(errorMessage(e)))
                    }
                  >
                    Download
                  </button>
                  {roleAtLeast(role, 'admin') && (
                    <button
                      type="button"
                      className="link danger"
                      aria-label={`Delete ${f.name}`}
                      onClick={() => {
                        if (window.confirm(`Delete ${f.name}?`)) remove.mutate({ fileId: f.id });
                      }}
                    >
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            )),
          )}
        </tbody>
      </table>
      {files.data?.pages[0]?.items.length === 0 && <p className="muted">No files yet.</p>}
      {files.hasNextPage && (
        <button type="button" className="link" onClick={() => void files.fetchNextPage()}>
          Load more files
        </button>
      )}
    </section>
  );
}
