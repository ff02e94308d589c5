import { formatUsdc } from '../../lib/money';
import type { PaymentRow, PaymentStatus } from './payments.table';

export interface Payment {
  id: string;
  projectId: string | null;
  chainId: number;
  txHash: string;
  logIndex: number;
  blockNumber: number;
  blockHash: string;
  token: string;
  from: string;
  to: string;
  /** USDC, six decimals ("12.500000"). */
  amount: string;
  status: PaymentStatus;
  claimedBy: string | null;
  creditedAt: string | null;
  createdAt: string;
}

export function toPayment(r: PaymentRow): Payment {
  return {
    id: r.id,
    projectId: r.projectId,
    chainId: r.chainId,
    txHash: r.txHash,
    logIndex: r.logIndex,
    blockNumber: r.blockNumber,
    blockHash: r.blockHash,
    token: r.token,
    from: r.fromAddress,
    to: r.toAddress,
    amount: formatUsdc(r.amount),
    status: r.status,
    claimedBy: r.claimedBy,
    creditedAt: r.creditedAt?.toISOString() ?? null,
    createdAt: r.createdAt.toISOString(),
  };
}
