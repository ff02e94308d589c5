import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { closeClient, createClient, memorySessionStore } from '@smartspace/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cli,
  openTerminal,
  PASSWORD,
  register,
  type Server,
  type Session,
  STACK_LINE,
  startCli,
  startServer,
  tempConfigHome,
} from './harness';

/**
 * Runs that wait for a person, from the terminal: `runs start --follow` shows the pending
 * approval and (in a terminal) asks for the decision, or prints the commands that decide it;
 * `runs approve|reject` decide from another process; only the approver role may decide.
 */

let server: Server;
/** The project's owner (may approve) and a plain member (may start runs, not approve). */
const owner = tempConfigHome();
const member = tempConfigHome();
const CALL = '[[tool:calculator {"expression":"6*7"}]]';
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

const login = (home: string, email: string) =>
  cli(home, ['login', '--url', server.url], { input: `${email}\n${PASSWORD}\n` });

beforeAll(async () => {
  server = await startServer();
  await register(server.url, 'olivia@example.com', 'Olivia');
  await register(server.url, 'max@example.com', 'Max');
  expect((await login(owner, 'olivia@example.com')).code).toBe(0);
  expect((await cli(owner, ['projects', 'create', 'Gated'])).code).toBe(0);
  // The CLI adds no members: the owner's saved session does it through the API.
  const saved = JSON.parse(readFileSync(join(owner, 'smartspace', 'credentials.json'), 'utf8'));
  const client = createClient({
    url: `${server.url}/trpc`,
    session: memorySessionStore(saved.session),
  });
  try {
    const [project] = (await client.projects.list.query({})).items;
    await client.projects.members.add.mutate({
      projectId: project?.id ?? '',
      email: 'max@example.com',
      role: 'member',
    });
  } finally {
    await closeClient(client);
  }
  expect((await login(member, 'max@example.com')).code).toBe(0);
});

afterAll(async () => {
  await server?.stop();
});

/** The run and approval ids in the commands a follower without a terminal prints. */
async function pendingIds(follower: Session): Promise<{ runId: string; approvalId: string }> {
  const approve = new RegExp(`smartspace runs approve (${UUID}) (${UUID})`);
  await follower.waitFor(approve);
  const [, runId = '', approvalId = ''] = approve.exec(follower.output()) ?? [];
  return { runId, approvalId };
}

describe('agents that need approval', () => {
  it('agents create --requires-approval: only tools the agent has', async () => {
    const bad = await cli(owner, [
      'agents',
      'create',
      'Sloppy',
      '-i',
      'Use the calculator.',
      '--model',
      'mock-echo',
      '-t',
      'current_time',
      '--requires-approval',
      'calculator',
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('requiresApproval names "calculator"');
    expect(bad.stderr).not.toMatch(STACK_LINE);

    const r = await cli(owner, [
      'agents',
      'create',
      'Careful',
      '-i',
      'Use the calculator.',
      '--model',
      'mock-echo',
      '-t',
      'calculator,current_time',
      '--requires-approval',
      'calculator',
    ]);
    expect(r.code).toBe(0);
    const list = JSON.parse((await cli(owner, ['agents', 'list', '--json'])).stdout);
    expect(list).toEqual([
      expect.objectContaining({
        name: 'Careful',
        tools: ['calculator', 'current_time'],
        requiresApproval: ['calculator'],
      }),
    ]);
  });

  it('agents update --requires-approval replaces the list ("" clears it)', async () => {
    const cleared = await cli(owner, ['agents', 'update', 'Careful', '--requires-approval', '']);
    expect(cleared.code).toBe(0);
    let [agent] = JSON.parse((await cli(owner, ['agents', 'list', '--json'])).stdout);
    expect(agent.requiresApproval).toEqual([]);
    const back = await cli(owner, [
      'agents',
      'update',
      'Careful',
      '--requires-approval',
      'calculator',
    ]);
    expect(back.code).toBe(0);
    [agent] = JSON.parse((await cli(owner, ['agents', 'list', '--json'])).stdout);
    expect(agent.requiresApproval).toEqual(['calculator']);
    // A member may not change agents: the server's words, exit 1.
    const denied = await cli(member, ['agents', 'update', 'Careful', '--requires-approval', '']);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/Error: .+ \[[a-z_]+\.[a-z_]+\]/);
  });
});

describe('following a run without a terminal', () => {
  it('shows the approval and the commands; `runs approve` elsewhere lets it finish (exit 0)', async () => {
    const follower = startCli(member, ['runs', 'start', 'Careful', '--input', CALL, '--follow']);
    const { runId, approvalId } = await pendingIds(follower);
    expect(follower.stdout()).toContain('⏸ approval needed: calculator {"expression":"6*7"}');
    expect(follower.stdout()).toMatch(
      new RegExp(
        `approval ${approvalId} · expires \\d{4}-\\d\\d-\\d\\d [\\d:]{8} UTC \\(in 23h 5\\dm\\)`,
      ),
    );
    expect(follower.stderr()).toContain(`smartspace runs reject ${runId} ${approvalId}`);

    // runs get lists it, pending, with how to decide.
    const shown = await cli(owner, ['runs', 'get', runId]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/status\s+awaiting_approval/);
    expect(shown.stdout).toContain(approvalId);
    expect(shown.stdout).toMatch(/calculator \{"expression":"6\*7"\}.*pending/);
    expect(shown.stderr).toContain(`smartspace runs approve|reject ${runId}`);
    const json = JSON.parse((await cli(owner, ['runs', 'get', runId, '--json'])).stdout);
    expect(json.approvals).toEqual([
      expect.objectContaining({ id: approvalId, tool: 'calculator', status: 'pending' }),
    ]);

    // The member who started it may not decide: the server's message, exit 1, still pending.
    const denied = await cli(member, ['runs', 'approve', runId]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain('Approving steps needs the admin role or higher');
    expect(denied.stderr).toContain('[projects.role_insufficient]');

    // The owner approves the only pending one without naming it.
    const approved = await cli(owner, ['runs', 'approve', runId, '--note', 'go ahead']);
    expect(approved.stderr).not.toMatch(STACK_LINE);
    expect(approved.code).toBe(0);
    expect(approved.stderr).toContain('Approved calculator');

    expect(await follower.exit()).toBe(0);
    const out = follower.stdout();
    expect(out).toContain(`✔ approved — go ahead (approval ${approvalId}, by `);
    expect(out).toContain('← calculator: {"result":42}');
    expect(out).toContain('✔ succeeded');
    // Decided once: again is a conflict, and nothing is pending any more.
    const again = await cli(owner, ['runs', 'reject', runId, approvalId]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('[runs.approval_closed]');
    const none = await cli(owner, ['runs', 'approve', runId]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`Run ${runId} has no pending approval (it is succeeded)`);
  });

  it('--json: events as lines; `runs reject --note` sends the model the note', async () => {
    const follower = startCli(owner, [
      'runs',
      'start',
      'Careful',
      '--input',
      CALL,
      '--follow',
      '--json',
    ]);
    await follower.waitFor(/"type":"approval\.requested"/);
    const requested = follower
      .stdout()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .find((e) => e.type === 'approval.requested');
    expect(requested).toMatchObject({ tool: 'calculator', input: { expression: '6*7' } });
    // Scripts read the ids from the events; stderr has no human hints in --json mode.
    expect(follower.stderr()).not.toContain('smartspace runs approve');
    const runs = JSON.parse((await cli(owner, ['runs', 'list', '--json'])).stdout);
    const runId = runs.find((r: { status: string }) => r.status === 'awaiting_approval').id;

    const rejected = await cli(owner, [
      'runs',
      'reject',
      runId,
      requested.approvalId,
      '--note',
      'not with my budget',
      '--json',
    ]);
    expect(rejected.code).toBe(0);
    expect(JSON.parse(rejected.stdout)).toMatchObject({
      id: requested.approvalId,
      status: 'rejected',
      note: 'not with my budget',
    });

    expect(await follower.exit()).toBe(0);
    const lines = follower.stdout().trim().split('\n');
    const events = lines.slice(0, -1).map((l) => JSON.parse(l));
    expect(events).toContainEqual(
      expect.objectContaining({
        type: 'approval.decided',
        approvalId: requested.approvalId,
        decision: 'rejected',
        note: 'not with my budget',
      }),
    );
    const run = JSON.parse(lines.at(-1) ?? '');
    expect(run.approvals).toEqual([expect.objectContaining({ status: 'rejected' })]);
    expect(JSON.stringify(run.output)).toContain('A person rejected this call of calculator');
    expect(JSON.stringify(run.output)).toContain('not with my budget');
  });

  it('a malformed or unknown id: the server says so, exit 1, no stack', async () => {
    const runs = JSON.parse((await cli(owner, ['runs', 'list', '--json'])).stdout);
    const runId = runs[0].id;
    const malformed = await cli(owner, ['runs', 'approve', runId, 'not-an-id']);
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toMatch(/Error: .*approvalId/);
    expect(malformed.stderr).not.toMatch(STACK_LINE);
    const unknown = await cli(owner, [
      'runs',
      'reject',
      runId,
      '00000000-0000-4000-8000-000000000000',
    ]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('[runs.approval_not_found]');
  });
});

describe('following a run in a terminal', () => {
  it('asks; approving at the prompt with a note lets the run finish (exit 0)', async () => {
    const term = openTerminal(owner, ['runs', 'start', 'Careful', '--input', CALL, '--follow']);
    await term.waitFor(/⏸ approval needed: calculator/);
    await term.waitFor(/Approve calculator\? \[y\]es, \[n\]o \(reject\), \[s\]kip: /);
    expect(term.output()).not.toContain('smartspace runs approve');
    term.type('maybe\r');
    // Not an answer: asked again.
    await term.waitFor(/(Approve calculator\?[\s\S]*){2}/);
    term.type('y\r');
    await term.waitFor(/Note \(optional, Enter for none\): /);
    term.type('fine by me\r');
    await term.waitFor(/✔ approved — fine by me/);
    await term.waitFor(/✔ succeeded/);
    expect(await term.exit()).toBe(0);
    expect(term.output()).toContain('← calculator: {"result":42}');
  }, 120_000);

  it('without the role: the server says so and following goes on until someone decides', async () => {
    const term = openTerminal(member, ['runs', 'start', 'Careful', '--input', CALL, '--follow']);
    await term.waitFor(/Approve calculator\? /);
    term.type('n\r');
    await term.waitFor(/Note \(optional/);
    term.type('\r');
    await term.waitFor(/Approving steps needs the admin role or higher/);
    await term.waitFor(/Still following: someone else may decide\./);
    const runs = JSON.parse((await cli(owner, ['runs', 'list', '--json'])).stdout);
    const runId = runs.find((r: { status: string }) => r.status === 'awaiting_approval').id;
    expect((await cli(owner, ['runs', 'approve', runId])).code).toBe(0);
    await term.waitFor(/✔ succeeded/);
    expect(await term.exit()).toBe(0);
  }, 120_000);

  it('skip leaves it undecided and prints the commands; a decision elsewhere ends it', async () => {
    const term = openTerminal(owner, ['runs', 'start', 'Careful', '--input', CALL, '--follow']);
    await term.waitFor(/Approve calculator\? /);
    term.type('s\r');
    await term.waitFor(/Left undecided; still following\./);
    const approve = new RegExp(`smartspace runs approve (${UUID}) (${UUID})`);
    await term.waitFor(approve);
    const [, runId = '', approvalId = ''] = approve.exec(term.output()) ?? [];
    expect(term.output()).not.toContain('Note (optional');
    expect((await cli(owner, ['runs', 'approve', runId, approvalId])).code).toBe(0);
    await term.waitFor(/✔ succeeded/);
    expect(await term.exit()).toBe(0);
  }, 120_000);

  it('a decision made elsewhere withdraws the question', async () => {
    const term = openTerminal(owner, ['runs', 'start', 'Careful', '--input', CALL, '--follow']);
    await term.waitFor(/Approve calculator\? /);
    const runs = JSON.parse((await cli(owner, ['runs', 'list', '--json'])).stdout);
    const runId = runs.find((r: { status: string }) => r.status === 'awaiting_approval').id;
    const r = await cli(owner, ['runs', 'reject', runId, '--note', 'someone else said no']);
    expect(r.code).toBe(0);
    // The open question makes way: the decision starts a line of its own.
    await term.waitFor(/[\r\n]✗ rejected — someone else said no/);
    await term.waitFor(/✔ succeeded/);
    expect(await term.exit()).toBe(0);
    expect(term.output()).not.toContain('Note (optional');
  }, 120_000);

  it('Ctrl-C at the prompt cancels the run (exit 1)', async () => {
    const term = openTerminal(owner, ['runs', 'start', 'Careful', '--input', CALL, '--follow']);
    await term.waitFor(/Approve calculator\? /);
    term.type('\x03');
    await term.waitFor(/■ cancelled/);
    expect(await term.exit()).toBe(1);
    const [latest] = JSON.parse((await cli(owner, ['runs', 'list', '--json'])).stdout);
    expect(latest.status).toBe('cancelled');
    const got = JSON.parse((await cli(owner, ['runs', 'get', latest.id, '--json'])).stdout);
    expect(got.approvals).toEqual([expect.objectContaining({ status: 'cancelled' })]);
  }, 120_000);
});
