import type { Payment } from '@smartspace/client';
import { useInfiniteQuery, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect } from 'react';
import { roleAtLeast, useCurrentProject } from '../hooks';
import { useTRPC } from '../trpc';
import { confirmationsOf, shortHex } from '../wallet/deposit';
import { injectedProvider, walletChain } from '../wallet/injected';
import { ErrorText } from './auth';
import { DepositSection } from './billing-deposit';
import { WalletsSection } from './billing-wallets';

/** While a deposit waits for confirmations, look often; otherwise now and then (the watcher). */
const FAST_POLL_MS = 2_000;
const SLOW_POLL_MS = 15_000;

export function BillingPage() {
  const { projectId, project, role } = useCurrentProject();
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const config = useQuery(trpc.payments.config.queryOptions());
  const wallets = useQuery(trpc.wallets.list.queryOptions());
  const payments = useInfiniteQuery({
    ...trpc.payments.list.infiniteQueryOptions(
      { projectId, limit: 50 },
      { getNextPageParam: (page) => page.nextCursor ?? undefined },
    ),
    // No subscription for payments: poll, fast while one is pending.
    refetchInterval: (q) =>
      q.state.data?.pages.some((p) => p.items.some((i) => i.status === 'pending'))
        ? FAST_POLL_MS
        : SLOW_POLL_MS,
  });
  const items = payments.data?.pages.flatMap((p) => p.items) ?? [];
  const pending = items.some((p) => p.status === 'pending');
  const budget = useQuery({
    ...trpc.budgets.get.queryOptions({ projectId }),
    refetchInterval: pending ? FAST_POLL_MS : SLOW_POLL_MS,
  });
  // A payment changing status (credited, reversed) moves the balance: read it again at once.
  const statuses = items.map((p) => `${p.id}:${p.status}`).join(',');
  useEffect(() => {
    if (statuses) void queryClient.invalidateQueries({ queryKey: trpc.budgets.get.pathKey() });
  }, [statuses, queryClient, trpc]);

  if (!project) return <section className="page">Loading…</section>;
  const canDeposit = roleAtLeast(role, 'member');
  return (
    <section className="page billing">
      <h1>Billing</h1>
      <ErrorText error={budget.error ?? config.error} />
      <p className="balance">
        Balance:{' '}
        <output aria-label="Balance">{budget.data ? `${budget.data.balance} USDC` : '…'}</output>
        {budget.data && budget.data.reserved !== '0.000000' && (
          <span className="muted"> ({budget.data.reserved} USDC held for model calls)</span>
        )}
      </p>
      <WalletsSection projectId={projectId} canDeposit={canDeposit} />
      {config.data && (
        <DepositSection
          projectId={projectId}
          config={config.data}
          canDeposit={canDeposit}
          hasWallet={(wallets.data?.length ?? 0) > 0}
        />
      )}
      <h2>Payments</h2>
      <ErrorText error={payments.error} />
      {payments.data && items.length === 0 && <p className="muted">No payments yet.</p>}
      {items.length > 0 && (
        <PaymentsTable
          items={items}
          needed={config.data?.confirmations ?? 0}
          chainId={config.data?.chainId ?? null}
          pending={pending}
        />
      )}
      {payments.hasNextPage && (
        <button
          type="button"
          className="secondary"
          disabled={payments.isFetchingNextPage}
          onClick={() => void payments.fetchNextPage()}
        >
          Older payments
        </button>
      )}
    </section>
  );
}

function PaymentsTable({
  items,
  needed,
  chainId,
  pending,
}: {
  items: Payment[];
  needed: number;
  chainId: number | null;
  pending: boolean;
}) {
  // The API gives a payment's block, not the chain's head: the browser wallet, when it is on
  // the deposit chain, tells how many confirmations a pending deposit has.
  const provider = injectedProvider();
  const chain = useQuery({
    queryKey: ['wallet', 'chain'],
    queryFn: () => (provider ? walletChain(provider) : null),
    enabled: provider !== null && pending,
    refetchInterval: FAST_POLL_MS,
    retry: false,
  });
  const head = chain.data && chain.data.chainId === chainId ? chain.data.head : null;
  const status = (p: Payment) => {
    if (p.status !== 'pending') return p.status;
    if (head === null) return `pending (credited after ${needed} confirmations)`;
    return `pending: ${Math.min(confirmationsOf(p.blockNumber, head), needed)} of ${needed} confirmations`;
  };
  return (
    <table className="table" aria-label="Payments">
      <thead>
        <tr>
          <th>Amount</th>
          <th>Status</th>
          <th>From</th>
          <th>Transaction</th>
          <th>Block</th>
          <th>Recorded</th>
        </tr>
      </thead>
      <tbody>
        {items.map((p) => (
          <tr key={p.id} data-status={p.status}>
            <td>{p.amount} USDC</td>
            <td className={`status ${p.status}`}>{status(p)}</td>
            <td>
              <code title={p.from}>{shortHex(p.from)}</code>
            </td>
            <td>
              <code title={p.txHash}>{shortHex(p.txHash)}</code>
            </td>
            <td>{p.blockNumber}</td>
            <td>{new Date(p.createdAt).toLocaleString()}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
