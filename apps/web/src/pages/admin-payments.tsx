import { useInfiniteQuery, useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { isUuid } from '../admin/audit-filters';
import { useProjects } from '../hooks';
import { useTRPC } from '../trpc';
import { shortHex } from '../wallet/deposit';
import { ErrorText } from './auth';

/** A project named by the admin: one of theirs by name, or any project by id. */
function useProjectRef() {
  const projects = useProjects();
  return (text: string): string | null => {
    const t = text.trim();
    return projects.data?.items.find((p) => p.name === t)?.id ?? (isUuid(t) ? t : null);
  };
}

function ProjectInput({
  label,
  value,
  onChange,
}: {
  label: string;
  value: string;
  onChange: (v: string) => void;
}) {
  const projects = useProjects();
  return (
    <>
      <input
        aria-label={label}
        list="admin-projects"
        placeholder="Project name or id"
        required
        value={value}
        onChange={(e) => onChange(e.target.value)}
      />
      <datalist id="admin-projects">
        {projects.data?.items.map((p) => (
          <option key={p.id} value={p.name} />
        ))}
      </datalist>
    </>
  );
}

export function AdminPaymentsPage() {
  return (
    <section className="page">
      <h1>Payments and credits</h1>
      <Unmatched />
      <ManualCredit />
    </section>
  );
}

function Unmatched() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const projectRef = useProjectRef();
  const [targets, setTargets] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const unmatched = useInfiniteQuery({
    ...trpc.payments.unmatched.infiniteQueryOptions(
      { limit: 50 },
      { getNextPageParam: (page) => page.nextCursor ?? undefined },
    ),
    refetchInterval: 15_000,
  });
  const assign = useMutation(
    trpc.payments.assign.mutationOptions({
      onSuccess: () =>
        queryClient.invalidateQueries({ queryKey: trpc.payments.unmatched.pathKey() }),
    }),
  );
  const items = unmatched.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <>
      <h2>Unmatched deposits</h2>
      <p className="muted">
        USDC that reached the deposit address from a wallet nobody linked, or that nobody claimed.
        Give each to the project it was meant for.
      </p>
      <ErrorText error={unmatched.error ?? assign.error} />
      {formError && (
        <p role="alert" className="error">
          {formError}
        </p>
      )}
      {unmatched.data && items.length === 0 && <p>No unmatched deposits.</p>}
      {items.length > 0 && (
        <table className="table" aria-label="Unmatched deposits">
          <thead>
            <tr>
              <th>Amount</th>
              <th>From</th>
              <th>Transaction</th>
              <th>Block</th>
              <th>Seen</th>
              <th>Assign to</th>
            </tr>
          </thead>
          <tbody>
            {items.map((p) => (
              <tr key={p.id}>
                <td>{p.amount} USDC</td>
                <td>
                  <code title={p.from}>{p.from}</code>
                </td>
                <td>
                  <code title={p.txHash}>{shortHex(p.txHash)}</code>
                </td>
                <td>{p.blockNumber}</td>
                <td>{new Date(p.createdAt).toLocaleString()}</td>
                <td>
                  <form
                    className="row"
                    onSubmit={(e) => {
                      e.preventDefault();
                      setFormError(null);
                      const projectId = projectRef(targets[p.id] ?? '');
                      if (!projectId) {
                        setFormError('Project: a project id, or the name of one of yours');
                        return;
                      }
                      assign.mutate({ paymentId: p.id, projectId });
                    }}
                  >
                    <ProjectInput
                      label={`Project for ${p.amount} USDC from ${p.from}`}
                      value={targets[p.id] ?? ''}
                      onChange={(v) => setTargets({ ...targets, [p.id]: v })}
                    />
                    <button type="submit" disabled={assign.isPending}>
                      Assign
                    </button>
                  </form>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {unmatched.hasNextPage && (
        <button
          type="button"
          className="secondary"
          disabled={unmatched.isFetchingNextPage}
          onClick={() => void unmatched.fetchNextPage()}
        >
          More
        </button>
      )}
    </>
  );
}

function ManualCredit() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const projectRef = useProjectRef();
  const [project, setProject] = useState('');
  const [amount, setAmount] = useState('');
  const [reason, setReason] = useState('');
  const [formError, setFormError] = useState<string | null>(null);
  // One key per intended credit: a double click or a retried request credits once.
  const [key, setKey] = useState(() => crypto.randomUUID());
  const credit = useMutation(
    trpc.payments.credit.mutationOptions({
      onSuccess: async () => {
        setKey(crypto.randomUUID());
        setAmount('');
        setReason('');
        await queryClient.invalidateQueries({ queryKey: trpc.budgets.get.pathKey() });
      },
    }),
  );
  return (
    <>
      <h2>Manual credit</h2>
      <form
        className="column narrow"
        aria-label="Manual credit"
        onSubmit={(e) => {
          e.preventDefault();
          setFormError(null);
          const projectId = projectRef(project);
          if (!projectId) {
            setFormError('Project: a project id, or the name of one of yours');
            return;
          }
          credit.mutate({ projectId, amount: amount.trim(), reason, idempotencyKey: key });
        }}
      >
        <div className="field">
          <span>Project</span>
          <ProjectInput label="Project to credit" value={project} onChange={setProject} />
        </div>
        <label className="field">
          <span>Amount (USDC)</span>
          <input
            inputMode="decimal"
            required
            placeholder="e.g. 10.00"
            value={amount}
            onChange={(e) => {
              setAmount(e.target.value);
              setKey(crypto.randomUUID());
            }}
          />
        </label>
        <label className="field">
          <span>Reason</span>
          <input
            required
            minLength={3}
            maxLength={500}
            placeholder="Why (kept in the ledger and the audit log)"
            value={reason}
            onChange={(e) => setReason(e.target.value)}
          />
        </label>
        <button type="submit" disabled={credit.isPending}>
          Credit project
        </button>
      </form>
      {formError && (
        <p role="alert" className="error">
          {formError}
        </p>
      )}
      <ErrorText error={credit.error} />
      {credit.data && (
        <p role="status">
          Credited {credit.data.amount} USDC: the project's balance is now{' '}
          {credit.data.balanceAfter} USDC.
        </p>
      )}
    </>
  );
}
