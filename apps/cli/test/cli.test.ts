import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_EMAIL,
  cli,
  freePort,
  PASSWORD,
  register,
  type Server,
  STACK_LINE,
  startServer,
  tempConfigHome,
} from './harness';

let server: Server;
/** The signed-in member's config home, shared by the tests that follow login. */
let home: string;
let projectId: string;

const login = (configHome: string, email: string, password = PASSWORD) =>
  cli(configHome, ['login', '--url', server.url], { input: `${email}\n${password}\n` });

beforeAll(async () => {
  server = await startServer();
  // The first account on a server becomes its admin: that one is meant to be.
  await register(server.url, ADMIN_EMAIL, 'Admin');
  await register(server.url, 'ada@example.com', 'Ada');
  home = tempConfigHome();
});

afterAll(async () => {
  await server?.stop();
});

describe('usage errors', () => {
  it('exit 2 for an unknown command, with a suggestion and no stack', async () => {
    const r = await cli(home, ['projects', 'lsit']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'lsit'/);
    expect(r.stderr).toMatch(/Did you mean list/);
  });

  it('exit 2 for a bad option value before any network call', async () => {
    const r = await cli(home, ['usage', '--by', 'week']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--by takes one of day, model, agent, member');
  });

  it('exit 2 for a missing required option', async () => {
    const r = await cli(home, ['runs', 'start', 'some-agent']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("required option '-i, --input <text>' not specified");
  });
});

describe('sign-in', () => {
  it('refuses to work before login, naming the command to run', async () => {
    const r = await cli(tempConfigHome(), ['whoami', '--url', server.url]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('run `smartspace login` first');
  });

  it('names the URL when the server cannot be reached', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const r2 = await cli(tempConfigHome(), ['login', '--url', dead], {
      input: `ada@example.com\n${PASSWORD}\n`,
    });
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain(`Cannot reach the SmartSpace server at ${dead}`);
    expect(r2.stderr).toContain('connection refused');
    expect(r2.stderr).not.toMatch(STACK_LINE);
  });

  it('a wrong password: exit 1, the server message and appCode, no stack trace', async () => {
    const r = await login(tempConfigHome(), 'ada@example.com', 'not the password');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Error: .+ \[auth\.invalid_credentials\]/);
    expect(r.stderr).not.toMatch(STACK_LINE);
  });

  it('--debug adds the stack trace', async () => {
    const r = await cli(home, ['--debug', 'login', '--url', server.url], {
      input: 'ada@example.com\nnot the password\n',
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(STACK_LINE);
  });

  it('login reads email and password from stdin and keeps them 0600', async () => {
    const r = await login(home, 'ada@example.com');
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`Signed in to ${server.url} as ada@example.com`);
    expect(r.stdout).not.toContain(PASSWORD);
    const file = join(home, 'smartspace', 'credentials.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, 'smartspace')).mode & 0o777).toBe(0o700);
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    expect(saved.url).toBe(server.url);
    expect(saved.session.user.email).toBe('ada@example.com');
  });

  it('whoami, as text and as JSON', async () => {
    const text = await cli(home, ['whoami']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/email\s+ada@example\.com/);
    const json = await cli(home, ['whoami', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({
      url: server.url,
      user: { email: 'ada@example.com', name: 'Ada', role: 'user' },
    });
  });

  it('an expired access token is refreshed silently and the new one saved', async () => {
    const file = join(home, 'smartspace', 'credentials.json');
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    const oldRefresh = saved.session.refreshToken;
    saved.session.accessToken = 'expired.or.forged';
    writeFileSync(file, JSON.stringify(saved), { mode: 0o600 });
    const r = await cli(home, ['whoami', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).user.email).toBe('ada@example.com');
    const after = JSON.parse(readFileSync(file, 'utf8'));
    expect(after.session.accessToken).not.toBe('expired.or.forged');
    expect(after.session.refreshToken).not.toBe(oldRefresh);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });
});

describe('an ended session', () => {
  it('a refused refresh signs out and says to log in again', async () => {
    const other = tempConfigHome();
    expect((await login(other, 'ada@example.com')).code).toBe(0);
    const file = join(other, 'smartspace', 'credentials.json');
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    saved.session.accessToken = 'expired.or.forged';
    saved.session.refreshToken = 'revoked-refresh-token';
    writeFileSync(file, JSON.stringify(saved), { mode: 0o600 });
    const r = await cli(other, ['whoami']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('run `smartspace login` again');
    expect(r.stderr).toMatch(/\[auth\.[a-z_]+\]/);
    expect(JSON.parse(readFileSync(file, 'utf8')).session).toBeNull();
    const again = await cli(other, ['whoami']);
    expect(again.stderr).toContain('run `smartspace login` first');
  });
});

describe('projects', () => {
  it('create prints the id; list --json parses and has it', async () => {
    const created = await cli(home, ['projects', 'create', 'Apollo', '-d', 'moon shots']);
    expect(created.code).toBe(0);
    projectId = created.stdout.trim();
    expect(projectId).toMatch(/^[0-9a-f-]{36}$/);
    const list = await cli(home, ['projects', 'list', '--json']);
    expect(list.code).toBe(0);
    const projects = JSON.parse(list.stdout) as { id: string; name: string }[];
    expect(projects).toEqual([expect.objectContaining({ id: projectId, name: 'Apollo' })]);
    const table = await cli(home, ['projects', 'list']);
    expect(table.stdout).toContain('Apollo');
    expect(table.stdout).toContain('moon shots');
  });

  it('members of a project by name', async () => {
    const r = await cli(home, ['projects', 'members', 'Apollo', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([
      expect.objectContaining({ email: 'ada@example.com', role: 'owner' }),
    ]);
  });

  it('an unknown project id: exit 1 with the appCode', async () => {
    const r = await cli(home, ['projects', 'members', '00000000-0000-4000-8000-000000000000']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[projects.not_found]');
    expect(r.stderr).not.toMatch(STACK_LINE);
  });
});

describe('chat one-shot', () => {
  it('prints the streamed reply of the mock model and exits 0', async () => {
    const r = await cli(home, ['chat', '-m', 'what is the answer']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('Echo: what is the answer');
  });

  it('--json gives the reply, its usage and the conversation to continue', async () => {
    const r = await cli(home, ['chat', '-m', 'first', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ reply: 'Echo: first', cancelled: false, model: 'mock-echo' });
    expect(out.usage.outputTokens).toBeGreaterThan(0);
    const again = await cli(home, ['chat', '-c', out.conversationId, '-m', 'second', '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({
      conversationId: out.conversationId,
      reply: 'Echo: second',
    });
  });

  it('a failed reply exits 1 with its appCode', async () => {
    const r = await cli(home, ['chat', '-m', 'break now [[fail]]']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\[[a-z_]+\.[a-z_.]+\]/);
    expect(r.stderr).not.toMatch(STACK_LINE);
  });
});

describe('agents and runs', () => {
  let runId: string;

  it('creates an agent with the calculator tool', async () => {
    const r = await cli(home, [
      'agents',
      'create',
      'Calc',
      '-i',
      'Use the calculator.',
      '--model',
      'mock-echo',
      '-t',
      'calculator',
    ]);
    expect(r.code).toBe(0);
    const list = await cli(home, ['agents', 'list', '--json']);
    expect(JSON.parse(list.stdout)).toEqual([
      expect.objectContaining({ name: 'Calc', tools: ['calculator'] }),
    ]);
  });

  it('runs start --follow shows the tool call and its result and exits 0', async () => {
    const r = await cli(home, [
      'runs',
      'start',
      'Calc',
      '--input',
      'Add these [[tool:calculator {"expression":"2+2"}]]',
      '--follow',
    ]);
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('→ calculator {"expression":"2+2"}');
    expect(r.stdout).toContain('← calculator: {"result":4}');
    expect(r.stdout).toContain('Result: {"result":4}');
    expect(r.stdout).toContain('✔ succeeded');
    expect(r.stdout).toMatch(/tokens \d+ in \/ \d+ out, cost/);
  });

  it('--json --follow prints events as lines, then the finished run', async () => {
    const r = await cli(home, [
      'runs',
      'start',
      'Calc',
      '--input',
      '[[tool:calculator {"expression":"6*7"}]]',
      '--follow',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    const events = lines.slice(0, -1).map((l) => JSON.parse(l));
    expect(events).toContainEqual({
      type: 'tool.result',
      tool: 'calculator',
      output: { result: 42 },
    });
    const run = JSON.parse(lines.at(-1) ?? '');
    expect(run.status).toBe('succeeded');
    expect(run.steps.some((s: { kind: string; output: unknown }) => s.kind === 'tool')).toBe(true);
    runId = run.id;
  });

  it('a failing run exits 1 with the failure shown', async () => {
    const r = await cli(home, [
      'runs',
      'start',
      'Calc',
      '--input',
      '[[tool:calculator {"expression":"2+"}]] [[fail]]',
      '--follow',
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('✗ failed');
  });

  it('runs get and list', async () => {
    const got = await cli(home, ['runs', 'get', runId, '--json']);
    expect(JSON.parse(got.stdout)).toMatchObject({ id: runId, status: 'succeeded' });
    const list = await cli(home, ['runs', 'list', '--json']);
    expect((JSON.parse(list.stdout) as { id: string }[]).map((x) => x.id)).toContain(runId);
  });

  it('an unknown agent name: exit 1 with agents.not_found', async () => {
    const r = await cli(home, ['runs', 'start', 'Nobody', '--input', 'hi']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[agents.not_found]');
  });
});

describe('files', () => {
  it('uploads several files and lists them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'smartspace-cli-files-'));
    const notes = '# Notes\n\nThe launch window opens on Tuesday.\n';
    writeFileSync(join(dir, 'notes.md'), notes);
    writeFileSync(join(dir, 'data.csv'), 'a,b\n1,2\n');
    const r = await cli(home, [
      'files',
      'upload',
      join(dir, 'notes.md'),
      join(dir, 'data.csv'),
      '--json',
    ]);
    expect(r.code).toBe(0);
    const uploaded = JSON.parse(r.stdout) as { name: string; size: number }[];
    expect(uploaded.map((f) => [f.name, f.size])).toEqual([
      ['notes.md', Buffer.byteLength(notes)],
      ['data.csv', 8],
    ]);
    const list = await cli(home, ['files', 'list']);
    expect(list.stdout).toContain('notes.md');
    expect(list.stdout).toContain('data.csv');
  });

  it('a missing file is a usage error (2) and nothing is sent', async () => {
    const r = await cli(home, ['files', 'upload', '/nonexistent/file.txt']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Cannot read /nonexistent/file.txt: ENOENT');
  });
});

describe('usage and budgets', () => {
  it('usage --csv has a header and today’s row', async () => {
    const r = await cli(home, ['usage', '--csv']);
    expect(r.code).toBe(0);
    const [header, ...rows] = r.stdout.trim().split('\n');
    expect(header).toBe('day,requests,input tokens,output tokens,cost');
    const today = new Date().toISOString().slice(0, 10);
    const row = rows.find((l) => l.startsWith(today));
    expect(row).toBeDefined();
    // Four chat replies and the model steps of three runs, all today.
    expect(Number(row?.split(',')[1])).toBeGreaterThanOrEqual(7);
  });

  it('usage --by model --json', async () => {
    const r = await cli(home, ['usage', '--by', 'model', '--json']);
    expect(JSON.parse(r.stdout)).toEqual([expect.objectContaining({ key: 'mock-echo' })]);
  });

  it('budgets set and get', async () => {
    const set = await cli(home, ['budgets', 'set', '--amount', '25', '--period', 'month']);
    expect(set.code).toBe(0);
    const got = await cli(home, ['budgets', 'get', '--json']);
    expect(JSON.parse(got.stdout).limits).toEqual([
      expect.objectContaining({ scope: 'project', period: 'month', amount: '25.000000' }),
    ]);
  });
});

describe('admin', () => {
  const admin = tempConfigHome();

  beforeAll(async () => {
    expect((await login(admin, ADMIN_EMAIL)).code).toBe(0);
  });

  it('a member cannot credit: exit 1 with auth.admin_required', async () => {
    const r = await cli(home, ['credit', projectId, '5', '--reason', 'please']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[auth.admin_required]');
  });

  it('credit adds to the project balance', async () => {
    const r = await cli(admin, ['credit', projectId, '12.5', '--reason', 'welcome credit']);
    expect(r.code).toBe(0);
    const got = await cli(home, ['budgets', 'get', '--json']);
    expect(JSON.parse(got.stdout).balance).toBe('12.500000');
  });

  it('an invalid amount is a usage error', async () => {
    const r = await cli(admin, ['credit', projectId, '12,5', '--reason', 'typo']);
    expect(r.code).toBe(2);
  });

  it('users list, promote and deactivate', async () => {
    const list = await cli(admin, ['users', 'list', '--json']);
    const emails = (JSON.parse(list.stdout) as { email: string }[]).map((u) => u.email);
    expect(emails.sort()).toEqual(['ada@example.com', ADMIN_EMAIL].sort());
    await register(server.url, 'bob@example.com', 'Bob');
    const promoted = await cli(admin, ['users', 'promote', 'bob@example.com', '--json']);
    expect(JSON.parse(promoted.stdout).role).toBe('admin');
    const off = await cli(admin, ['users', 'deactivate', 'bob@example.com']);
    expect(off.code).toBe(0);
    const bob = await login(tempConfigHome(), 'bob@example.com');
    expect(bob.code).toBe(1);
  });

  it('audit list and verify', async () => {
    const list = await cli(admin, ['audit', 'list', '--action', 'payments.credited', '--json']);
    expect(JSON.parse(list.stdout)).toEqual([
      expect.objectContaining({ action: 'payments.credited', projectId }),
    ]);
    const verify = await cli(admin, ['audit', 'verify', '--json']);
    expect(verify.code).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
  });

  it('payments unmatched is empty on a fresh server', async () => {
    const r = await cli(admin, ['payments', 'unmatched', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([]);
  });
});

describe('API keys', () => {
  const keyHome = tempConfigHome();
  let secret: string;
  let keyId: string;

  it('keys create prints the secret once; keys list shows only its prefix', async () => {
    const r = await cli(home, ['keys', 'create', 'ci', '--role', 'member', '--json']);
    expect(r.code).toBe(0);
    const created = JSON.parse(r.stdout);
    secret = created.secret;
    keyId = created.key.id;
    expect(secret).toMatch(/^ssk_/);
    const list = await cli(home, ['keys', 'list']);
    expect(list.stdout).toContain(created.key.prefix);
    expect(list.stdout).not.toContain(secret);
  });

  it('login --api-key finds the key’s project, saves the key (0600); whoami names it', async () => {
    const r = await cli(keyHome, ['login', '--url', server.url, '--api-key'], {
      input: `${secret}\n`,
    });
    expect(r.code).toBe(0);
    const file = join(keyHome, 'smartspace', 'credentials.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({
      apiKey: secret,
      project: projectId,
    });
    const who = await cli(keyHome, ['whoami', '--json']);
    expect(JSON.parse(who.stdout)).toMatchObject({ project: { id: projectId, name: 'Apollo' } });
  });

  it('the key chats in its project', async () => {
    const r = await cli(keyHome, ['chat', '-m', 'from a key']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('Echo: from a key');
  });

  it('SMARTSPACE_API_KEY works without any login', async () => {
    // No --project either: the key lists exactly its own project.
    const r = await cli(tempConfigHome(), ['files', 'list', '--json'], {
      env: { SMARTSPACE_API_KEY: secret, SMARTSPACE_URL: server.url },
    });
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { name: string }[]).map((f) => f.name).sort()).toEqual([
      'data.csv',
      'notes.md',
    ]);
  });

  it('a key cannot do what needs a person: exit 1 with the appCode', async () => {
    const r = await cli(keyHome, ['keys', 'create', 'another']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[auth.key_not_allowed]');
  });

  it('a revoked key stops working', async () => {
    const revoke = await cli(home, ['keys', 'revoke', keyId]);
    expect(revoke.code).toBe(0);
    const r = await cli(keyHome, ['whoami']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[auth.key_revoked]');
    expect(r.stderr).not.toMatch(STACK_LINE);
  });
});

describe('server operations', () => {
  it('db migrate and mail outbox run the server entry points', async () => {
    const env = { DATA_DIR: mkdtempSync(join(tmpdir(), 'smartspace-cli-ops-')) };
    const migrate = await cli(home, ['db', 'migrate'], { env, timeoutMs: 120_000 });
    expect(migrate.stderr).toBe('');
    expect(migrate.code).toBe(0);
    expect(migrate.stdout).toMatch(/migrations applied \(pglite\); pending: 0/);
    const outbox = await cli(home, ['mail', 'outbox', '3'], { env, timeoutMs: 120_000 });
    expect(outbox.code).toBe(0);
    expect(outbox.stdout).toContain('the outbox is empty');
  });

  it('mail outbox passes the script’s usage error on', async () => {
    const r = await cli(home, ['mail', 'outbox', 'lots']);
    expect(r.code).toBe(2);
  });
});

describe('the root script', () => {
  it('pnpm smartspace runs the CLI from source', async () => {
    const root = join(import.meta.dirname, '../../..');
    const r = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const child = spawn('pnpm', ['-s', 'smartspace', '--version'], { cwd: root });
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, out }));
    });
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe(
      JSON.parse(readFileSync(join(import.meta.dirname, '../package.json'), 'utf8')).version,
    );
  });
});

describe('logout', () => {
  it('forgets the credentials', async () => {
    const r = await cli(home, ['logout']);
    expect(r.code).toBe(0);
    const who = await cli(home, ['whoami', '--url', server.url]);
    expect(who.code).toBe(1);
    expect(who.stderr).toContain('run `smartspace login` first');
  });
});
