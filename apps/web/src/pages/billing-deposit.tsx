import type { RouterOutputs } from '@smartspace/client';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import QRCode from 'qrcode';
import { useEffect, useState } from 'react';
import type { Address } from 'viem';
import { useTRPC } from '../trpc';
import { depositUri, TX_HASH, usdcUnits } from '../wallet/deposit';
import { walletErrorMessage } from '../wallet/errors';
import { injectedProvider, requestAccount, sendUsdc } from '../wallet/injected';
import { ErrorText } from './auth';

type PaymentsConfig = RouterOutputs['payments']['config'];

/**
 * Where and how to pay: the deposit address on its chain (with a QR code), the amount the
 * user means to send, then the transaction hash to claim it for this project.
 */
export function DepositSection({
  projectId,
  config,
  canDeposit,
  hasWallet,
}: {
  projectId: string;
  config: PaymentsConfig;
  canDeposit: boolean;
  hasWallet: boolean;
}) {
  const depositAddress = config.depositAddress;
  if (!depositAddress) {
    return (
      <section aria-labelledby="deposit-heading">
        <h2 id="deposit-heading">Deposit USDC</h2>
        <p className="notice">
          Deposits are off: this server accepts no USDC (it has no deposit address configured). Ask
          a platform admin for a manual credit.
        </p>
      </section>
    );
  }
  return (
    <DepositForm
      projectId={projectId}
      config={config}
      depositAddress={depositAddress}
      canDeposit={canDeposit}
      hasWallet={hasWallet}
    />
  );
}

function DepositForm({
  projectId,
  config,
  depositAddress,
  canDeposit,
  hasWallet,
}: {
  projectId: string;
  config: PaymentsConfig;
  depositAddress: string;
  canDeposit: boolean;
  hasWallet: boolean;
}) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [amount, setAmount] = useState('');
  const [txHash, setTxHash] = useState('');
  const [qr, setQr] = useState<string | null>(null);
  const units = usdcUnits(amount);
  const uri = depositUri({
    chainId: config.chainId,
    usdc: config.usdcAddress,
    depositAddress,
    units,
  });
  useEffect(() => {
    let live = true;
    QRCode.toDataURL(uri, { margin: 1, width: 200 }).then(
      (url) => live && setQr(url),
      () => live && setQr(null),
    );
    return () => {
      live = false;
    };
  }, [uri]);

  const confirm = useMutation(
    trpc.payments.confirmDeposit.mutationOptions({
      onSuccess: () =>
        Promise.all([
          queryClient.invalidateQueries({ queryKey: trpc.payments.list.pathKey() }),
          queryClient.invalidateQueries({ queryKey: trpc.budgets.get.pathKey() }),
        ]),
    }),
  );
  const provider = injectedProvider();
  const send = useMutation({
    mutationFn: async () => {
      if (!provider || units === null) throw new Error('Enter an amount first');
      const account = await requestAccount(provider);
      return sendUsdc({
        provider,
        account,
        chainId: config.chainId,
        usdc: config.usdcAddress as Address,
        to: depositAddress as Address,
        amount: amount.trim(),
      });
    },
    onSuccess: (hash) => {
      setTxHash(hash);
      confirm.mutate({ projectId, txHash: hash });
    },
  });
  const hashOk = TX_HASH.test(txHash.trim());

  return (
    <section aria-labelledby="deposit-heading">
      <h2 id="deposit-heading">Deposit USDC</h2>
      <div className="deposit">
        <dl className="facts">
          <dt>Chain</dt>
          <dd>
            {config.chainName} (id {config.chainId})
          </dd>
          <dt>USDC contract</dt>
          <dd>
            <code>{config.usdcAddress}</code>
          </dd>
          <dt>Deposit address</dt>
          <dd>
            <code>{depositAddress}</code>{' '}
            <button
              type="button"
              className="link"
              onClick={() => void navigator.clipboard?.writeText(depositAddress)}
            >
              Copy address
            </button>
          </dd>
          <dt>Credited after</dt>
          <dd>{config.confirmations} confirmations</dd>
        </dl>
        {qr && (
          <img
            className="qr"
            src={qr}
            width={200}
            height={200}
            alt={units === null ? 'QR code of the deposit address' : `QR code: pay ${amount} USDC`}
          />
        )}
      </div>
      <label className="field">
        <span>Amount to send (USDC)</span>
        <input
          inputMode="decimal"
          placeholder="e.g. 25.00"
          value={amount}
          onChange={(e) => setAmount(e.target.value)}
        />
      </label>
      {amount.trim() !== '' && units === null && (
        <p className="error">A positive amount with at most 6 decimals, e.g. 25.50.</p>
      )}
      <p className="muted">
        Send exactly this much USDC on {config.chainName} from a linked wallet to the deposit
        address, then paste the transaction hash below. Only USDC from a wallet linked to your
        account counts.
      </p>
      {canDeposit ? (
        <>
          {provider && hasWallet && (
            <p>
              <button
                type="button"
                className="secondary"
                disabled={units === null || send.isPending || confirm.isPending}
                onClick={() => send.mutate()}
              >
                {send.isPending ? 'Confirm in your wallet…' : 'Send with my browser wallet'}
              </button>
            </p>
          )}
          {send.error && (
            <p role="alert" className="error">
              {walletErrorMessage(send.error)}
            </p>
          )}
          <form
            className="row"
            onSubmit={(e) => {
              e.preventDefault();
              confirm.mutate({ projectId, txHash: txHash.trim() });
            }}
          >
            <input
              aria-label="Transaction hash"
              placeholder="0x… transaction hash"
              className="grow"
              value={txHash}
              onChange={(e) => setTxHash(e.target.value)}
            />
            <button type="submit" disabled={!hashOk || confirm.isPending}>
              I sent it
            </button>
          </form>
          <ErrorText error={confirm.error} />
          {confirm.data && (
            <p role="status">
              {confirm.data.status === 'credited'
                ? `${confirm.data.amount} USDC credited to this project.`
                : `${confirm.data.amount} USDC received: credited after ${config.confirmations} confirmations.`}
            </p>
          )}
        </>
      ) : (
        <p className="muted">Claiming a deposit for this project needs the member role.</p>
      )}
    </section>
  );
}
