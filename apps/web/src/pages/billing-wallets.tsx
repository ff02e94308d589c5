import type { Wallet } from '@smartspace/client';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useProjects } from '../hooks';
import { client, useTRPC } from '../trpc';
import { walletErrorMessage } from '../wallet/errors';
import { injectedProvider, requestAccount, signText } from '../wallet/injected';
import { ErrorText } from './auth';

/**
 * The user's linked wallets (they belong to the user, not the project) and linking one with
 * SIWE: the browser wallet signs the server's one-time challenge.
 */
export function WalletsSection({
  projectId,
  canDeposit,
}: {
  projectId: string;
  canDeposit: boolean;
}) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const projects = useProjects();
  const wallets = useQuery(trpc.wallets.list.queryOptions());
  const provider = injectedProvider();
  const [creditHere, setCreditHere] = useState(canDeposit);
  const refresh = () => queryClient.invalidateQueries({ queryKey: trpc.wallets.list.queryKey() });
  const link = useMutation({
    mutationFn: async () => {
      if (!provider) throw new Error('No browser wallet found');
      const address = await requestAccount(provider);
      const { message } = await client.wallets.challenge.mutate({ address });
      const signature = await signText(provider, address, message);
      return client.wallets.link.mutate({
        message,
        signature,
        projectId: creditHere && canDeposit ? projectId : null,
      });
    },
    onSuccess: refresh,
  });
  const unlink = useMutation(trpc.wallets.unlink.mutationOptions({ onSuccess: refresh }));
  const projectName = (id: string | null) =>
    id === null
      ? 'nowhere (claim each deposit)'
      : (projects.data?.items.find((p) => p.id === id)?.name ?? id);

  return (
    <section aria-labelledby="wallets-heading">
      <h2 id="wallets-heading">Wallets</h2>
      <ErrorText error={wallets.error ?? unlink.error} />
      {wallets.data && wallets.data.length === 0 && (
        <p className="muted">No wallet linked yet. Deposits count only from a linked wallet.</p>
      )}
      {wallets.data && wallets.data.length > 0 && (
        <table className="table" aria-label="Linked wallets">
          <thead>
            <tr>
              <th>Address</th>
              <th>Chain</th>
              <th>Unclaimed deposits go to</th>
              <th>Actions</th>
            </tr>
          </thead>
          <tbody>
            {wallets.data.map((w: Wallet) => (
              <tr key={w.id}>
                <td>
                  <code>{w.address}</code>
                </td>
                <td>{w.chainId}</td>
                <td>{projectName(w.projectId)}</td>
                <td>
                  <button
                    type="button"
                    className="link danger"
                    aria-label={`Unlink ${w.address}`}
                    disabled={unlink.isPending}
                    onClick={() => unlink.mutate({ walletId: w.id })}
                  >
                    Unlink
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {provider ? (
        <div className="row">
          {canDeposit && (
            <label className="check">
              <input
                type="checkbox"
                checked={creditHere}
                onChange={(e) => setCreditHere(e.target.checked)}
              />
              Credit deposits from it that nobody claims to this project
            </label>
          )}
          <button type="button" disabled={link.isPending} onClick={() => link.mutate()}>
            {link.isPending ? 'Waiting for the wallet…' : 'Link a wallet'}
          </button>
        </div>
      ) : (
        <p className="muted">
          No browser wallet found. Install one (MetaMask, Rabby, Coinbase Wallet…) and reload to
          link it.
        </p>
      )}
      {link.error && (
        <p role="alert" className="error">
          {walletErrorMessage(link.error)}
        </p>
      )}
    </section>
  );
}
