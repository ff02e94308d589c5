import argon2 from 'argon2';

/**
 * argon2id at OWASP's minimum (m=19 MiB, t=2, p=1). The addon hashes on libuv's thread
 * pool, so the event loop keeps serving while it works.
 */
const OPTIONS = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, OPTIONS);
}

export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, password);
  } catch {
    return false;
  }
}

let dummy: Promise<string> | undefined;

/**
 * Spends the same work as a real verification, for unknown accounts, so timing does not
 * tell whether an email is registered.
 */
export async function burnPasswordCheck(password: string): Promise<void> {
  dummy ??= hashPassword('dummy password that never matches');
  await verifyPassword(await dummy, password);
}

/** Whether a stored hash was made with weaker parameters than today's. */
export function needsRehash(hash: string): boolean {
  return argon2.needsRehash(hash, OPTIONS);
}
