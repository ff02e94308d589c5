import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { roleAtLeast, useCurrentProject } from '../hooks';
import { useTRPC } from '../trpc';
import { type BudgetLimit, describeLimit, parseThresholds, spentShare } from '../usage/limits';
import { toMicro, usdc } from '../usage/money';
import { ErrorText } from './auth';

type Scope = 'project' | 'agent' | 'member';
type Period = 'day' | 'week' | 'month' | 'total';

interface LimitDraft {
  scope: Scope;
  scopeId: string;
  period: Period;
  amount: string;
  alerts: string;
}

const EMPTY: LimitDraft = {
  scope: 'project',
  scopeId: '',
  period: 'month',
  amount: '',
  alerts: '50, 80, 100',
};

/** /projects/:projectId/budgets: balance, limits with their spend, and (admins) editing them. */
export function BudgetsPage() {
  const { projectId, role } = useCurrentProject();
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const budgets = useQuery(trpc.budgets.get.queryOptions({ projectId }));
  const agents = useQuery(trpc.agents.list.queryOptions({ projectId }));
  const members = useQuery(trpc.projects.members.list.queryOptions({ projectId }));
  const canEdit = roleAtLeast(role, 'admin');
  const [draft, setDraft] = useState<LimitDraft>(EMPTY);
  const refresh = () =>
    queryClient.invalidateQueries({ queryKey: trpc.budgets.get.queryKey({ projectId }) });
  const setLimit = useMutation(
    trpc.budgets.setLimit.mutationOptions({
      onSuccess: async () => {
        setDraft(EMPTY);
        await refresh();
      },
    }),
  );
  const removeLimit = useMutation(trpc.budgets.removeLimit.mutationOptions({ onSuccess: refresh }));
  const thresholds = parseThresholds(draft.alerts);

  const scopeName = (l: Pick<BudgetLimit, 'scope' | 'scopeId'>) => {
    if (l.scope === 'agent')
      return agents.data?.find((a) => a.id === l.scopeId)?.name ?? l.scopeId ?? '';
    if (l.scope === 'member') {
      return members.data?.find((m) => m.userId === l.scopeId)?.name ?? l.scopeId ?? '';
    }
    if (l.scope === 'key') return l.scopeId ?? '';
    return '';
  };
  const targets =
    draft.scope === 'agent'
      ? (agents.data ?? []).map((a) => ({ id: a.id, name: a.name }))
      : draft.scope === 'member'
        ? (members.data ?? []).map((m) => ({ id: m.userId, name: `${m.name} (${m.email})` }))
        : [];

  const data = budgets.data;
  return (
    <section className="page budgets">
      <h1>Budgets</h1>
      <ErrorText error={budgets.error} />
      {data && (
        <dl className="facts">
          <dt>Balance</dt>
          <dd>{usdc(data.balance)} USDC</dd>
          <dt>Held for model calls</dt>
          <dd>{usdc(data.reserved)} USDC</dd>
          <dt>Spent this month</dt>
          <dd>{usdc(data.spentThisPeriod)} USDC</dd>
        </dl>
      )}
      <h2>Limits</h2>
      <ErrorText error={removeLimit.error} />
      <table className="table" aria-label="Budget limits">
        <thead>
          <tr>
            <th>Limit</th>
            <th>Spent this period</th>
            <th>Alerts at</th>
            <th>Period started</th>
            {canEdit && <th>Actions</th>}
          </tr>
        </thead>
        <tbody>
          {data?.limits.map((l) => {
            const label = describeLimit(l, scopeName(l));
            return (
              <tr key={l.id}>
                <td>
                  {label}: {usdc(l.amount)} USDC
                </td>
                <td>
                  <progress
                    max={1}
                    value={Math.min(1, spentShare(l))}
                    aria-label={`Spent of the ${label}`}
                    className={spentShare(l) >= 1 ? 'over' : ''}
                  />{' '}
                  {usdc(l.spent)}
                  {toMicro(l.reserved) > 0n && ` (+${usdc(l.reserved)} held)`} of {usdc(l.amount)}
                </td>
                <td>{l.alertAt.map((a) => `${Math.round(a * 100)}%`).join(', ') || '—'}</td>
                <td>{l.period === 'total' ? '—' : new Date(l.periodStart).toLocaleDateString()}</td>
                {canEdit && (
                  <td className="row">
                    <button
                      type="button"
                      className="link"
                      aria-label={`Edit the ${label}`}
                      onClick={() =>
                        setDraft({
                          scope: l.scope === 'key' ? 'project' : l.scope,
                          scopeId: l.scopeId ?? '',
                          period: l.period,
                          amount: usdc(l.amount),
                          alerts: l.alertAt.map((a) => Math.round(a * 100)).join(', '),
                        })
                      }
                    >
                      Edit
                    </button>
                    <button
                      type="button"
                      className="link danger"
                      aria-label={`Remove the ${label}`}
                      onClick={() => {
                        if (window.confirm(`Remove the ${label}?`))
                          removeLimit.mutate({ limitId: l.id });
                      }}
                    >
                      Remove
                    </button>
                  </td>
                )}
              </tr>
            );
          })}
        </tbody>
      </table>
      {data?.limits.length === 0 && (
        <p className="muted">No limits: spend is bounded by the balance only.</p>
      )}
      {canEdit && (
        <form
          className="column limit-form"
          aria-label="Set a limit"
          onSubmit={(e) => {
            e.preventDefault();
            if (!thresholds.ok) return;
            setLimit.mutate({
              projectId,
              scope: draft.scope,
              ...(draft.scope === 'project' ? {} : { scopeId: draft.scopeId }),
              period: draft.period,
              amount: draft.amount,
              alertAt: thresholds.value,
            });
          }}
        >
          <h2>Set a limit</h2>
          <p className="muted">
            One limit per scope and period: setting it again replaces its amount and alerts.
          </p>
          <div className="row">
            <label className="field inline">
              <span>Scope</span>
              <select
                value={draft.scope}
                onChange={(e) =>
                  setDraft({ ...draft, scope: e.target.value as Scope, scopeId: '' })
                }
              >
                <option value="project">project</option>
                <option value="agent">agent</option>
                <option value="member">member</option>
              </select>
            </label>
            {draft.scope !== 'project' && (
              <label className="field inline">
                <span>{draft.scope === 'agent' ? 'Agent' : 'Member'}</span>
                <select
                  required
                  value={draft.scopeId}
                  onChange={(e) => setDraft({ ...draft, scopeId: e.target.value })}
                >
                  <option value="">Choose…</option>
                  {targets.map((t) => (
                    <option key={t.id} value={t.id}>
                      {t.name}
                    </option>
                  ))}
                </select>
              </label>
            )}
            <label className="field inline">
              <span>Period</span>
              <select
                value={draft.period}
                onChange={(e) => setDraft({ ...draft, period: e.target.value as Period })}
              >
                <option value="day">day</option>
                <option value="week">week</option>
                <option value="month">month</option>
                <option value="total">total</option>
              </select>
            </label>
            <label className="field inline">
              <span>Amount (USDC)</span>
              <input
                required
                inputMode="decimal"
                placeholder="10.00"
                value={draft.amount}
                onChange={(e) => setDraft({ ...draft, amount: e.target.value })}
              />
            </label>
            <label className="field inline">
              <span>Alert at (% of the limit)</span>
              <input
                value={draft.alerts}
                aria-invalid={!thresholds.ok}
                onChange={(e) => setDraft({ ...draft, alerts: e.target.value })}
              />
            </label>
          </div>
          {!thresholds.ok && (
            <p role="alert" className="error">
              {thresholds.error}
            </p>
          )}
          <ErrorText error={setLimit.error} />
          <div className="row">
            <button type="submit" disabled={setLimit.isPending || !thresholds.ok}>
              Save limit
            </button>
          </div>
        </form>
      )}
    </section>
  );
}
