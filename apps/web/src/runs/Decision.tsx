import { useMutation } from '@tanstack/react-query';
import { useState } from 'react';
import { ErrorText } from '../pages/auth';
import { useTRPC } from '../trpc';

/**
 * Approve or reject one step a run waits for, with an optional note (the note reaches the
 * model on a rejection). The server checks the approver role (RUN_APPROVER_ROLE) and its
 * refusal is shown. Used by the run console and under an agent's reply in the chat.
 */
export function Decision(props: { runId: string; approvalId: string }) {
  const trpc = useTRPC();
  const [note, setNote] = useState('');
  const approve = useMutation(trpc.runs.approve.mutationOptions());
  const reject = useMutation(trpc.runs.reject.mutationOptions());
  const busy = approve.isPending || reject.isPending;
  const input = {
    runId: props.runId,
    approvalId: props.approvalId,
    ...(note.trim() ? { note: note.trim() } : {}),
  };
  return (
    <>
      <div className="row">
        <input
          aria-label="Approval note"
          placeholder="Note (optional)"
          value={note}
          onChange={(e) => setNote(e.target.value)}
        />
        <button type="button" disabled={busy} onClick={() => approve.mutate(input)}>
          Approve
        </button>
        <button
          type="button"
          className="danger"
          disabled={busy}
          onClick={() => reject.mutate(input)}
        >
          Reject
        </button>
      </div>
      <ErrorText error={approve.error ?? reject.error} />
    </>
  );
}
