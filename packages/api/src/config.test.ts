import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allSettings, ConfigError, loadConfig } from './config';

// README's Configuration table and .env.example are written by hand; the settings are the truth.
const root = new URL('../../../', import.meta.url);
const read = (file: string) => readFileSync(new URL(file, root), 'utf8');

/** `NAME=value` lines of .env.example (comments skipped, surrounding double quotes removed). */
function envExample(): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of read('.env.example').split('\n')) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (!m?.[1]) continue;
    expect(vars.has(m[1]), `${m[1]} twice in .env.example`).toBe(false);
    vars.set(m[1], (m[2] ?? '').replace(/^"(.*)"$/, '$1'));
  }
  return vars;
}

/** Variable -> the first backticked value of its default cell ('' when there is none). */
function readmeTable(): Map<string, string> {
  const section =
    read('README.md')
      .split(/^## Configuration$/m)[1]
      ?.split(/^## /m)[0] ?? '';
  const rows = section.split('\n').filter((l) => l.startsWith('|'));
  const vars = new Map<string, string>();
  // Past the header and separator rows.
  for (const row of rows.slice(2)) {
    const [names = '', fallback = ''] = row.split('|').slice(1);
    const literal = /`([^`]*)`/.exec(fallback)?.[1] ?? '';
    for (const [, name] of names.matchAll(/`([A-Z][A-Z0-9_]*)`/g)) {
      if (!name) continue;
      expect(vars.has(name), `${name} twice in README's table`).toBe(false);
      vars.set(name, literal);
    }
  }
  return vars;
}

const names = allSettings.map((s) => s.env);

describe('configuration documents', () => {
  it('declares each variable once', () => {
    expect(new Set(names).size).toBe(names.length);
  });

  it('.env.example lists every variable, with its literal default or empty', () => {
    const example = envExample();
    expect([...example.keys()].sort()).toEqual([...names].sort());
    const wrong = allSettings
      .filter((s) => example.get(s.env) !== (s.default ?? ''))
      .map((s) => `${s.env}=${example.get(s.env)} (default: ${s.default ?? 'none'})`);
    expect(wrong).toEqual([]);
  });

  it("README's Configuration table lists every variable, with its literal default", () => {
    const table = readmeTable();
    expect([...table.keys()].sort()).toEqual([...names].sort());
    const wrong = allSettings
      .filter((s) => s.default !== undefined && table.get(s.env) !== s.default)
      .map((s) => `${s.env}: ${table.get(s.env)} (default: ${s.default})`);
    expect(wrong).toEqual([]);
  });

  it('.env.example as an environment gives the defaults', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'smartspace-config-'));
    const example = Object.fromEntries(envExample());
    expect(loadConfig({ ...example, DATA_DIR: dataDir })).toEqual(
      loadConfig({ DATA_DIR: dataDir }),
    );
  });

  it('documents every setting', () => {
    for (const s of allSettings) expect(s.doc, s.env).not.toBe('');
  });
});

describe('rules across settings', () => {
  const dataDir = () => mkdtempSync(join(tmpdir(), 'smartspace-config-'));

  it('requires JWT_SECRET in production; elsewhere generates one kept in DATA_DIR', () => {
    const dir = dataDir();
    expect(() => loadConfig({ NODE_ENV: 'production', DATA_DIR: dir })).toThrow(ConfigError);
    expect(() => loadConfig({ NODE_ENV: 'production', DATA_DIR: dir })).toThrow(
      /JWT_SECRET: required when NODE_ENV=production/,
    );
    expect(() => loadConfig({ JWT_SECRET: 'too short', DATA_DIR: dir })).toThrow(
      /JWT_SECRET: must be at least 32 characters/,
    );
    const generated = loadConfig({ DATA_DIR: dir }).jwt.secret;
    expect(readFileSync(join(dir, 'jwt-secret'), 'utf8').trim()).toBe(
      new TextDecoder().decode(generated),
    );
    expect(loadConfig({ DATA_DIR: dir }).jwt.secret).toEqual(generated);
  });

  it('wants both S3 keys or neither, and S3 only with a bucket', () => {
    const base = { DATA_DIR: dataDir() };
    expect(() => loadConfig({ ...base, S3_ACCESS_KEY_ID: 'key' })).toThrow(/S3_SECRET_ACCESS_KEY/);
    expect(() => loadConfig({ ...base, S3_SECRET_ACCESS_KEY: 'secret' })).toThrow(
      /S3_ACCESS_KEY_ID/,
    );
    expect(loadConfig(base).files).toEqual({
      uploadMaxBytes: 25 * 1024 * 1024,
      dir: join(base.DATA_DIR, 'files'),
      s3: undefined,
    });
    const keys = { S3_ACCESS_KEY_ID: 'key', S3_SECRET_ACCESS_KEY: 'secret' };
    expect(loadConfig({ ...base, ...keys, S3_BUCKET: 'smartspace' }).files.s3).toEqual({
      bucket: 'smartspace',
      endpoint: undefined,
      region: 'us-east-1',
      credentials: { accessKeyId: 'key', secretAccessKey: 'secret' },
      forcePathStyle: false,
    });
  });

  it('reports every bad variable at once', () => {
    let message = '';
    try {
      loadConfig({ NODE_ENV: 'production', CHAIN_ID: '8453', DATA_DIR: dataDir() });
    } catch (err) {
      message = String(err);
    }
    expect(message).toMatch(/JWT_SECRET: required/);
    expect(message).toMatch(/CHAIN_RPC_URL: required/);
  });
});
