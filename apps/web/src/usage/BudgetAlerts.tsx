import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { appCodeOf } from '../errors';
import { client, useTRPC } from '../trpc';
import { describeLimit } from './limits';
import { usdc } from './money';

interface Alert {
  limitId: string;
  threshold: number;
  spent: string;
  amount: string;
}

interface Toast {
  id: string;
  alert: Alert;
}

/** How long a toast stays unless dismissed. */
const TOAST_MS = 15_000;

/**
 * Toasts for budget thresholds crossed in the project, live from budgets.onAlert (admins
 * only: the server refuses the subscription to other roles). Mounted by the layout, so they
 * show on every page of the project, the chat included.
 */
export function BudgetAlerts({ projectId }: { projectId: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const budgets = useQuery(trpc.budgets.get.queryOptions({ projectId }));
  const [toasts, setToasts] = useState<Toast[]>([]);

  useEffect(() => {
    const subscription = client.budgets.onAlert.subscribe(
      { projectId, lastEventId: null },
      {
        onData: ({ id, data }: { id: string; data: Alert }) => {
          setToasts((list) =>
            list.some((t) => t.id === id) ? list : [...list, { id, alert: data }],
          );
          setTimeout(() => setToasts((list) => list.filter((t) => t.id !== id)), TOAST_MS);
          void queryClient.invalidateQueries({
            queryKey: trpc.budgets.get.queryKey({ projectId }),
          });
        },
        onError: (err: unknown) => {
          // Access lost (role lowered, removed): the layout stops rendering this soon after.
          if (appCodeOf(err) !== 'projects.access_revoked') console.warn('budget alerts', err);
        },
      },
    );
    return () => subscription.unsubscribe();
  }, [projectId, queryClient, trpc]);

  if (toasts.length === 0) return null;
  return (
    <ul className="toasts" aria-label="Budget alerts">
      {toasts.map(({ id, alert }) => {
        const limit = budgets.data?.limits.find((l) => l.id === alert.limitId);
        return (
          <li key={id} role="status" className="toast">
            <strong>Budget alert:</strong> {Math.round(alert.threshold * 100)}% of the{' '}
            {limit ? describeLimit(limit) : 'budget'} used ({usdc(alert.spent)} of{' '}
            {usdc(alert.amount)} USDC).
            <button
              type="button"
              className="link"
              aria-label="Dismiss alert"
              onClick={() => setToasts((list) => list.filter((t) => t.id !== id))}
            >
              ×
            </button>
          </li>
        );
      })}
    </ul>
  );
}
