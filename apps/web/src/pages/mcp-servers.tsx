import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTRPC } from '../trpc';
import { ErrorText } from './auth';

/** "Name: value" per line → headers; a line without a colon is reported, not dropped. */
export function parseHeaders(
  text: string,
): { headers: Record<string, string> } | { error: string } {
  const headers: Record<string, string> = {};
  for (const [i, line] of text.split('\n').entries()) {
    if (!line.trim()) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) return { error: `Line ${i + 1}: write a header as "Name: value"` };
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return { headers };
}

/**
 * The project's MCP tool servers: their tools become agent tools named mcp__<server>__<tool>.
 * Admins add (the server's tool list is read first), refresh, replace headers and remove;
 * header values are write-only, so only their names show.
 */
export function McpServers(props: { projectId: string; canEdit: boolean }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const servers = useQuery(trpc.mcp.servers.list.queryOptions({ projectId: props.projectId }));
  const [name, setName] = useState('');
  const [url, setUrl] = useState('');
  const [headerText, setHeaderText] = useState('');
  const [formError, setFormError] = useState<string | null>(null);
  const [editing, setEditing] = useState<string | null>(null);
  const [editText, setEditText] = useState('');
  const refresh = () =>
    Promise.all([
      queryClient.invalidateQueries({ queryKey: trpc.mcp.servers.list.pathKey() }),
      queryClient.invalidateQueries({ queryKey: trpc.agents.pathKey() }),
    ]);
  const create = useMutation(
    trpc.mcp.servers.create.mutationOptions({
      onSuccess: async () => {
        setName('');
        setUrl('');
        setHeaderText('');
        await refresh();
      },
    }),
  );
  const reread = useMutation(trpc.mcp.servers.refresh.mutationOptions({ onSuccess: refresh }));
  const update = useMutation(trpc.mcp.servers.update.mutationOptions({ onSuccess: refresh }));
  const remove = useMutation(trpc.mcp.servers.delete.mutationOptions({ onSuccess: refresh }));
  return (
    <section aria-label="Tool servers">
      <h2>Tool servers (MCP)</h2>
      <p className="muted">
        Tools of these servers can be given to agents as <code>mcp__server__tool</code>.
      </p>
      {props.canEdit && (
        <form
          className="column"
          onSubmit={(e) => {
            e.preventDefault();
            const parsed = parseHeaders(headerText);
            if ('error' in parsed) {
              setFormError(parsed.error);
              return;
            }
            setFormError(null);
            const headers = Object.keys(parsed.headers).length > 0 ? parsed.headers : undefined;
            create.mutate({
              projectId: props.projectId,
              name: name.trim(),
              url: url.trim(),
              ...(headers ? { headers } : {}),
            });
          }}
        >
          <div className="row">
            <input
              aria-label="Server name"
              placeholder="name (e.g. github)"
              required
              value={name}
              onChange={(e) => setName(e.target.value)}
            />
            <input
              aria-label="Server URL"
              placeholder="https://…/mcp"
              required
              value={url}
              onChange={(e) => setUrl(e.target.value)}
            />
          </div>
          <textarea
            aria-label="Server headers"
            placeholder={'Authorization: Bearer …  (one header per line; stored encrypted)'}
            rows={2}
            value={headerText}
            onChange={(e) => setHeaderText(e.target.value)}
          />
          <div className="row">
            <button type="submit" disabled={create.isPending}>
              {create.isPending ? 'Reading its tools…' : 'Add server'}
            </button>
          </div>
        </form>
      )}
      {formError && (
        <p role="alert" className="error">
          {formError}
        </p>
      )}
      <ErrorText
        error={create.error ?? reread.error ?? update.error ?? remove.error ?? servers.error}
      />
      <ul className="mcp-servers" aria-label="Servers">
        {(servers.data ?? []).map((s) => (
          <li key={s.id} aria-label={`Server ${s.name}`}>
            <div className="row">
              <strong>{s.name}</strong> <code>{s.url}</code>
              <span className={`badge ${s.status}`}>{s.status}</span>
              {s.headerNames.length > 0 && (
                <span className="muted">headers: {s.headerNames.join(', ')}</span>
              )}
              <span className="spacer" />
              {props.canEdit && (
                <>
                  <button
                    type="button"
                    className="link"
                    disabled={reread.isPending}
                    onClick={() => reread.mutate({ serverId: s.id })}
                  >
                    Refresh tools
                  </button>
                  <button
                    type="button"
                    className="link"
                    aria-expanded={editing === s.id}
                    onClick={() => {
                      setEditing(editing === s.id ? null : s.id);
                      setEditText('');
                    }}
                  >
                    Replace headers
                  </button>
                  <button
                    type="button"
                    className="link danger"
                    onClick={() => {
                      if (window.confirm(`Remove ${s.name}? Agents lose its tools.`)) {
                        remove.mutate({ serverId: s.id });
                      }
                    }}
                  >
                    Remove
                  </button>
                </>
              )}
            </div>
            {editing === s.id && (
              <form
                className="row"
                onSubmit={(e) => {
                  e.preventDefault();
                  const parsed = parseHeaders(editText);
                  if ('error' in parsed) {
                    setFormError(parsed.error);
                    return;
                  }
                  setFormError(null);
                  const none = Object.keys(parsed.headers).length === 0;
                  update.mutate(
                    { serverId: s.id, headers: none ? null : parsed.headers },
                    { onSuccess: () => setEditing(null) },
                  );
                }}
              >
                <textarea
                  aria-label={`New headers for ${s.name}`}
                  placeholder="Name: value, one per line (empty removes them all)"
                  rows={2}
                  value={editText}
                  onChange={(e) => setEditText(e.target.value)}
                />
                <button type="submit" disabled={update.isPending}>
                  Save headers
                </button>
              </form>
            )}
            {s.lastError && (
              <p className="error" role="alert">
                Last refresh failed: {s.lastError}
              </p>
            )}
            <ul className="muted" aria-label={`Tools of ${s.name}`}>
              {s.tools.map((tool) => (
                <li key={tool.qualifiedName}>
                  <code>{tool.qualifiedName}</code> {tool.description}
                </li>
              ))}
              {s.tools.length === 0 && <li>No tools.</li>}
            </ul>
          </li>
        ))}
      </ul>
    </section>
  );
}
