import { useMutation, useQuery } from '@tanstack/react-query';
import { Link, useParams } from 'react-router';
import { roleAtLeast, useCurrentProject } from '../hooks';
import { Decision } from '../runs/Decision';
import { type Entry, isFinished, totals } from '../runs/timeline';
import { useRun } from '../runs/useRun';
import { useTRPC } from '../trpc';
import { usdc } from '../usage/money';
import { ErrorText } from './auth';

const json = (v: unknown) => JSON.stringify(v, null, 2) ?? 'null';

function duration(ms: number | null): string {
  if (ms === null) return '';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** /projects/:projectId/runs/:runId: a run live from runs.onProgress, or read-only when done. */
export function RunConsolePage() {
  const { runId = '' } = useParams();
  const { projectId, role } = useCurrentProject();
  const trpc = useTRPC();
  const { run, timeline, error } = useRun(runId);
  const agents = useQuery(trpc.agents.list.queryOptions({ projectId }));
  const agentName = (id: string | null) =>
    (id && agents.data?.find((a) => a.id === id)?.name) || id || '—';
  const cancel = useMutation(trpc.runs.cancel.mutationOptions());

  if (!run || !timeline) {
    return (
      <section className="page">
        {error ? (
          <p role="alert" className="error">
            {error}
          </p>
        ) : (
          'Loading…'
        )}
      </section>
    );
  }
  // Before its first event arrives, a followed run is as runs.get last saw it.
  const shown = timeline.status === 'queued' ? run.status : timeline.status;
  const done = isFinished(shown);
  const pending = done ? [] : pendingApprovals(timeline.entries);
  const status = pending.length > 0 ? 'awaiting_approval' : shown;
  const sum = totals(timeline.entries);
  const finalAgent = agents.data?.find(
    (a) => a.id === (timeline.activeAgentId ?? run.activeAgentId),
  );
  return (
    <section className="page run-console">
      <p>
        <Link to={`/projects/${projectId}/runs`}>← Runs</Link>
      </p>
      <div className="row">
        <h1>Run of {agentName(run.agentId)}</h1>
        <span className={`badge ${status}`} data-status={status}>
          {status}
        </span>
        <span className="spacer" />
        {!done && roleAtLeast(role, 'member') && (
          <button
            type="button"
            className="danger"
            disabled={cancel.isPending}
            onClick={() => cancel.mutate({ runId })}
          >
            Cancel run
          </button>
        )}
      </div>
      <ErrorText error={cancel.error} />
      {pending.length > 0 && (
        <Approvals runId={runId} pending={pending} canDecide={roleAtLeast(role, 'member')} />
      )}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <dl className="facts">
        <dt>Active agent</dt>
        <dd>{agentName(timeline.activeAgentId ?? run.activeAgentId)}</dd>
        <dt>Tokens</dt>
        <dd>
          {sum.inputTokens} in / {sum.outputTokens} out
        </dd>
        <dt>Cost</dt>
        <dd>{usdc(sum.cost)} USDC</dd>
        <dt>Started</dt>
        <dd>{new Date(run.createdAt).toLocaleString()}</dd>
      </dl>
      <details>
        <summary>Input</summary>
        <pre className="wrap">{run.input}</pre>
      </details>
      <h2>Timeline</h2>
      <ol className="timeline" aria-label="Run timeline">
        {timeline.entries.map((e, i) => (
          // Entries only ever append: the index is stable.
          // biome-ignore lint/suspicious/noArrayIndexKey: append-only list
          <TimelineEntry key={i} entry={e} agentName={agentName} />
        ))}
        {done && (
          <li className={`entry end ${status}`} data-kind="end">
            <strong>
              run.
              {status === 'succeeded' ? 'completed' : status === 'failed' ? 'failed' : 'cancelled'}
            </strong>
            {timeline.error && (
              <span className="error">
                {' '}
                {timeline.error.appCode}: {timeline.error.message}
              </span>
            )}
          </li>
        )}
        {!done && <li className="entry pending muted">Waiting for the next step…</li>}
      </ol>
      {status === 'succeeded' && (
        <>
          <h2>Output</h2>
          {finalAgent?.outputSchema || typeof timeline.output !== 'string' ? (
            <pre className="output json">{json(timeline.output)}</pre>
          ) : (
            <pre className="output wrap">{timeline.output}</pre>
          )}
        </>
      )}
    </section>
  );
}

function TimelineEntry({
  entry: e,
  agentName,
}: {
  entry: Entry;
  agentName: (id: string | null) => string;
}) {
  switch (e.kind) {
    case 'model':
      return (
        <li className="entry model" data-kind="model">
          <div className="entry-head">
            <strong>Model</strong>
            {e.step !== null && <span className="muted">step {e.step}</span>}
            <span>{agentName(e.agentId)}</span>
            <span className="spacer" />
            {e.usage && (
              <span className="muted">
                {e.usage.inputTokens} in / {e.usage.outputTokens} out · {usdc(e.usage.cost)} USDC
              </span>
            )}
            <span className="muted">{duration(e.durationMs)}</span>
          </div>
          {e.text && <div className="streamed">{e.text}</div>}
        </li>
      );
    case 'tool':
      return (
        <li className={`entry tool${e.isError ? ' failed' : ''}`} data-kind="tool">
          <div className="entry-head">
            <strong>Tool</strong>
            <code>{e.tool}</code>
            <span className="spacer" />
            <span className="muted">{duration(e.durationMs)}</span>
          </div>
          <div className="io">
            <pre>{json(e.input)}</pre>
            {'output' in e ? (
              <pre className={e.isError ? 'error' : ''}>
                {typeof e.output === 'string' ? e.output : json(e.output)}
              </pre>
            ) : (
              <span className="muted">running…</span>
            )}
          </div>
        </li>
      );
    case 'handoff':
      return (
        <li className="entry handoff" data-kind="handoff">
          <div className="entry-head">
            <strong>Handoff</strong>
            <span>
              {agentName(e.fromAgentId)} → {agentName(e.toAgentId)}
            </span>
            <span className="spacer" />
            <span className="muted">{duration(e.durationMs)}</span>
          </div>
        </li>
      );
    default:
      return (
        <li className="entry event" data-kind="event">
          <div className="entry-head">
            <strong>{e.type}</strong>
          </div>
          {Object.keys(e.payload).length > 0 && <pre>{json(e.payload)}</pre>}
        </li>
      );
  }
}

interface PendingApproval {
  approvalId: string;
  tool: string | null;
  input: unknown;
  expiresAt: string;
}

/** approval.requested events of the timeline without their approval.decided. */
function pendingApprovals(entries: Entry[]): PendingApproval[] {
  const events = entries.flatMap((e) => (e.kind === 'event' ? [e] : []));
  const decided = new Set(
    events.filter((e) => e.type === 'approval.decided').map((e) => e.payload.approvalId),
  );
  return events
    .filter((e) => e.type === 'approval.requested' && !decided.has(e.payload.approvalId))
    .map((e) => e.payload as unknown as PendingApproval);
}

/**
 * Steps the run waits for: approve or reject, with a note. Members see the buttons; the
 * server checks the approver role (RUN_APPROVER_ROLE) and its refusal is shown.
 */
function Approvals(props: { runId: string; pending: PendingApproval[]; canDecide: boolean }) {
  return (
    <section className="approvals" aria-label="Pending approvals">
      <h2>Waiting for approval</h2>
      {props.pending.map((p) => (
        <fieldset key={p.approvalId} className="approval" aria-label={`Approval of ${p.tool}`}>
          <p>
            <strong>{p.tool ?? 'A model step'}</strong> wants to run with
          </p>
          <pre className="json">{json(p.input)}</pre>
          <p className="muted">Expires {new Date(p.expiresAt).toLocaleString()}</p>
          {props.canDecide && <Decision runId={props.runId} approvalId={p.approvalId} />}
        </fieldset>
      ))}
    </section>
  );
}
