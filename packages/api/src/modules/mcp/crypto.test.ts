import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deriveKey, headerKey, openHeaders, SealBroken, sealHeaders } from './crypto';

const key = deriveKey('a-test-secret-that-is-long-enough-0123456789');
const SERVER = '6b0c8e0e-6a43-4a43-9b53-0a2f1b6f7d11';

describe('sealed headers', () => {
  it('round-trips, and the sealed text does not contain the values', () => {
    const headers = { authorization: 'Bearer sk-live-secret-token' };
    const sealed = sealHeaders(key, SERVER, headers);
    expect(sealed).not.toContain('sk-live');
    expect(openHeaders(key, SERVER, sealed)).toEqual(headers);
    // A fresh IV each time.
    expect(sealHeaders(key, SERVER, headers)).not.toBe(sealed);
  });

  it('does not open with another key, for another server, or once tampered with', () => {
    const sealed = sealHeaders(key, SERVER, { 'x-api-key': 'abc123' });
    expect(() =>
      openHeaders(deriveKey('another-secret-that-is-long-enough-000000'), SERVER, sealed),
    ).toThrow(SealBroken);
    expect(() => openHeaders(key, '00000000-0000-4000-8000-000000000000', sealed)).toThrow(
      SealBroken,
    );
    const parts = sealed.split('.');
    const body = Buffer.from(parts[3] ?? '', 'base64url');
    body[0] = (body[0] ?? 0) ^ 1;
    parts[3] = body.toString('base64url');
    expect(() => openHeaders(key, SERVER, parts.join('.'))).toThrow(SealBroken);
    expect(() => openHeaders(key, SERVER, 'v0.a.b.c')).toThrow(SealBroken);
  });

  it('the key: the setting, else generated once into DATA_DIR; none in production', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'smartspace-mcp-key-'));
    const first = headerKey({ secret: undefined, nodeEnv: 'development', dataDir });
    expect(statSync(join(dataDir, 'mcp-secret-key')).mode & 0o777).toBe(0o600);
    expect(
      readFileSync(join(dataDir, 'mcp-secret-key'), 'utf8').trim().length,
    ).toBeGreaterThanOrEqual(32);
    expect(headerKey({ secret: undefined, nodeEnv: 'development', dataDir })).toEqual(first);
    expect(headerKey({ secret: undefined, nodeEnv: 'production', dataDir })).toBeNull();
    const given = 'x'.repeat(40);
    expect(headerKey({ secret: given, nodeEnv: 'production', dataDir })).toEqual(deriveKey(given));
  });
});
