import { and, asc, eq, gt, lt } from 'drizzle-orm';
import type { Address, Hex } from 'viem';
import type { ChainClient } from '../../chain/chain';
import type { Db } from '../../db/client';
import { type Actor, auditedBy } from '../../lib/actor';
import { AppError } from '../../lib/errors';
import { recordAudit } from '../audit/audit.service';
import { requireMembership } from '../projects/projects.service';
import { roleAtLeast } from '../projects/roles';
import { buildChallenge, checkSiweMessage, type SiweOrigin, verifySiweSignature } from './siwe';
import { type WalletRow, walletChallenges, wallets } from './wallets.table';

export interface Wallet {
  id: string;
  address: string;
  chainId: number;
  /** Deposits from this wallet nobody claims are credited here (null: left unmatched). */
  projectId: string | null;
  createdAt: string;
}

function toWallet(r: WalletRow): Wallet {
  return {
    id: r.id,
    address: r.address,
    chainId: r.chainId,
    projectId: r.projectId,
    createdAt: r.createdAt.toISOString(),
  };
}

export async function createChallenge(opts: {
  db: Db;
  chain: ChainClient;
  origin: SiweOrigin;
  userId: string;
  address: Address;
}): Promise<{ message: string }> {
  const c = buildChallenge({
    origin: opts.origin,
    chainId: opts.chain.settings.id,
    address: opts.address,
  });
  // Expired challenges are useless: whoever issues one sweeps them (indexed on expiry).
  await opts.db.delete(walletChallenges).where(lt(walletChallenges.expiresAt, new Date()));
  await opts.db.insert(walletChallenges).values({
    nonce: c.nonce,
    userId: opts.userId,
    address: c.address,
    domain: opts.origin.domain,
    uri: opts.origin.uri,
    chainId: opts.chain.settings.id,
    issuedAt: c.issuedAt,
    expiresAt: c.expiresAt,
  });
  return { message: c.message };
}

/**
 * Links the wallet that signed a challenge to the caller. The nonce must be one issued to
 * this user for this address and not expired; it is consumed atomically with the link, so
 * it works once even under concurrent calls. Linking again (a fresh challenge) updates the
 * deposit project; an address linked to someone else is a CONFLICT.
 */
export async function linkWallet(opts: {
  db: Db;
  chain: ChainClient;
  origin: SiweOrigin;
  actor: Actor;
  message: string;
  signature: Hex;
  projectId?: string | null | undefined;
}): Promise<Wallet> {
  const { db, chain } = opts;
  const { userId } = opts.actor;
  // First: naming another tenant's project answers NOT_FOUND whatever else is wrong.
  if (opts.projectId) {
    const membership = await requireMembership({
      db,
      projectId: opts.projectId,
      userId,
    });
    if (!roleAtLeast(membership.role, 'member')) {
      throw new AppError('projects.role_insufficient', 'Deposits need the member role or higher');
    }
  }
  const parsed = checkSiweMessage({
    message: opts.message,
    origin: opts.origin,
    chainId: chain.settings.id,
  });
  const badNonce = () =>
    new AppError('wallets.nonce_invalid', 'The challenge is unknown, used or expired');
  const [challenge] = await db
    .select()
    .from(walletChallenges)
    .where(and(eq(walletChallenges.nonce, parsed.nonce), eq(walletChallenges.userId, userId)));
  if (
    !challenge ||
    challenge.address !== parsed.address ||
    challenge.expiresAt.getTime() <= Date.now() ||
    challenge.expiresAt.getTime() !== parsed.expirationTime.getTime()
  ) {
    throw badNonce();
  }
  await verifySiweSignature({
    chain,
    message: opts.message,
    signature: opts.signature,
    parsed,
    origin: opts.origin,
  });
  return db.transaction(async (tx) => {
    const [consumed] = await tx
      .delete(walletChallenges)
      .where(
        and(
          eq(walletChallenges.nonce, parsed.nonce),
          eq(walletChallenges.userId, userId),
          gt(walletChallenges.expiresAt, new Date()),
        ),
      )
      .returning({ nonce: walletChallenges.nonce });
    if (!consumed) throw badNonce();
    await tx
      .insert(wallets)
      .values({
        userId,
        address: parsed.address,
        chainId: parsed.chainId,
        projectId: opts.projectId ?? null,
      })
      .onConflictDoNothing();
    const [row] = await tx
      .select()
      .from(wallets)
      .where(eq(wallets.address, parsed.address))
      .for('update');
    if (!row || row.userId !== userId) {
      throw new AppError('wallets.already_linked', 'This wallet is linked to another account');
    }
    let wallet = row;
    if (opts.projectId !== undefined && row.projectId !== opts.projectId) {
      const [updated] = await tx
        .update(wallets)
        .set({ projectId: opts.projectId })
        .where(eq(wallets.id, row.id))
        .returning();
      if (updated) wallet = updated;
    }
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'wallets.linked',
      projectId: wallet.projectId,
      target: wallet.id,
      metadata: { address: wallet.address, chainId: wallet.chainId, projectId: wallet.projectId },
    });
    return toWallet(wallet);
  });
}

export async function listWallets(opts: { db: Db; userId: string }): Promise<Wallet[]> {
  const rows = await opts.db
    .select()
    .from(wallets)
    .where(eq(wallets.userId, opts.userId))
    .orderBy(asc(wallets.createdAt), asc(wallets.id));
  return rows.map(toWallet);
}

/** Deposits already claimed keep their project; later ones from it are unmatched. */
export async function unlinkWallet(opts: {
  db: Db;
  actor: Actor;
  walletId: string;
}): Promise<void> {
  await opts.db.transaction(async (tx) => {
    const [row] = await tx
      .delete(wallets)
      .where(and(eq(wallets.id, opts.walletId), eq(wallets.userId, opts.actor.userId)))
      .returning();
    if (!row) throw new AppError('wallets.not_found', 'No such wallet');
    await recordAudit({
      db: tx,
      ...auditedBy(opts.actor),
      action: 'wallets.unlinked',
      target: row.id,
      metadata: { address: row.address },
    });
  });
}
