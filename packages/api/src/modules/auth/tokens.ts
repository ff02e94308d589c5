import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import type { Config } from '../../config';

/** `typ` header of access tokens (RFC 9068); refresh tokens are opaque, never JWTs. */
const ACCESS_TYP = 'at+jwt';
const ALG = 'HS256';

export interface AccessClaims {
  userId: string;
  sessionId: string;
}

export interface VerifiedAccess extends AccessClaims {
  expiresAt: Date;
}

/**
 * jose imports a raw secret into a WebCrypto key on every call; importing it once per secret
 * takes most of the cost out of verifying a token on each request.
 */
const keys = new WeakMap<Uint8Array<ArrayBuffer>, Promise<CryptoKey>>();
function hmacKey(secret: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, [
      'sign',
      'verify',
    ]);
    keys.set(secret, key);
  }
  return key;
}

export async function signAccessToken(
  jwt: Config['jwt'],
  claims: AccessClaims,
): Promise<{ token: string; expiresAt: Date }> {
  const now = Math.floor(Date.now() / 1000);
  const exp = now + jwt.accessTtlSeconds;
  const token = await new SignJWT({ sid: claims.sessionId })
    .setProtectedHeader({ alg: ALG, typ: ACCESS_TYP })
    .setIssuer(jwt.issuer)
    .setAudience(jwt.audience)
    .setSubject(claims.userId)
    .setIssuedAt(now)
    .setExpirationTime(exp)
    .setJti(randomUUID())
    .sign(await hmacKey(jwt.secret));
  return { token, expiresAt: new Date(exp * 1000) };
}

/**
 * Tokens this process has verified, by their exact text, per key and claims pinned. A client
 * sends the same access token on every request of its life, and verifying it (jose's parsing
 * plus an HMAC through WebCrypto, a job on another thread) was the largest cost of `users.me`
 * after the database. A hit repeats a verification that succeeded for the same bytes under the
 * same secret, issuer and audience, and expiry is checked again on every hit, so the answer is
 * the one jose would give. Whether the session still stands is not cached: the database answers
 * that on every call. Only successes are kept (garbage cannot fill the map), and at most
 * VERIFIED_MAX, oldest out first.
 */
const VERIFIED_MAX = 10_000;
interface Verified {
  secret: Uint8Array<ArrayBuffer>;
  issuer: string;
  audience: string;
  tokens: Map<string, VerifiedAccess>;
}
const verified = new WeakMap<Config['jwt'], Verified>();

function verifiedFor(jwt: Config['jwt']): Map<string, VerifiedAccess> {
  let entry = verified.get(jwt);
  // The same settings object with other values (never in the app; a test could) starts over.
  if (
    !entry ||
    entry.secret !== jwt.secret ||
    entry.issuer !== jwt.issuer ||
    entry.audience !== jwt.audience
  ) {
    entry = { secret: jwt.secret, issuer: jwt.issuer, audience: jwt.audience, tokens: new Map() };
    verified.set(jwt, entry);
  }
  return entry.tokens;
}

/** Verifies signature, algorithm, issuer, audience, type and expiry; null when any fails. */
export async function verifyAccessToken(
  jwt: Config['jwt'],
  token: string,
): Promise<VerifiedAccess | null> {
  const known = verifiedFor(jwt);
  const hit = known.get(token);
  if (hit) {
    // jose's rule with no clock tolerance: valid while now (in whole seconds) is before `exp`.
    if (Math.floor(Date.now() / 1000) < hit.expiresAt.getTime() / 1000) {
      return { userId: hit.userId, sessionId: hit.sessionId, expiresAt: hit.expiresAt };
    }
    known.delete(token);
    return null;
  }
  const access = await verifyWithJose(jwt, token);
  if (access) {
    if (known.size >= VERIFIED_MAX) {
      const oldest = known.keys().next();
      if (!oldest.done) known.delete(oldest.value);
    }
    known.set(token, access);
  }
  return access;
}

async function verifyWithJose(jwt: Config['jwt'], token: string): Promise<VerifiedAccess | null> {
  try {
    const { payload } = await jwtVerify(token, await hmacKey(jwt.secret), {
      algorithms: [ALG],
      issuer: jwt.issuer,
      audience: jwt.audience,
      typ: ACCESS_TYP,
      requiredClaims: ['sub', 'iat', 'exp', 'jti', 'sid'],
    });
    if (typeof payload.sub !== 'string' || typeof payload.sid !== 'string') return null;
    if (!isUuid(payload.sub) || !isUuid(payload.sid)) return null;
    return {
      userId: payload.sub,
      sessionId: payload.sid,
      expiresAt: new Date((payload.exp ?? 0) * 1000),
    };
  } catch {
    return null;
  }
}

/** 256 random bits, URL-safe. */
export function newRefreshToken(): string {
  return randomBytes(32).toString('base64url');
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
function isUuid(s: string): boolean {
  return UUID.test(s);
}
