import type { AnyProcedure } from '@trpc/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { mcpServers } from './modules/mcp/mcp.table';
import { wallets } from './modules/payments/wallets.table';
import { appRouter } from './router';
import { createTestApi, failure, type TestApi } from './testing';

/**
 * The tenant boundary, checked across the whole router: a member of project A calls every
 * procedure that takes an id of something inside a project with project B's ids, and gets
 * NOT_FOUND exactly as for an id that does not exist. A new scoped procedure without an
 * entry below fails this test.
 */

/** Input keys naming something inside a project (userId names a platform user). */
const scopedKey = (key: string) => key.endsWith('Id') && key !== 'userId' && key !== 'lastEventId';

function scopedPaths(): string[] {
  const procedures = appRouter._def.procedures as unknown as Record<string, AnyProcedure>;
  return Object.entries(procedures)
    .filter(
      ([, proc]) =>
        (proc._def.inputs as unknown[]).some(
          (i) => i instanceof z.ZodObject && Object.keys((i as z.ZodObject).shape).some(scopedKey),
        ) ||
        // A project-role procedure is scoped whatever its input (an upload's projectId
        // arrives inside FormData).
        typeof (proc._def.meta as { auth?: unknown } | undefined)?.auth === 'object',
    )
    .map(([path]) => path)
    .sort();
}

let t: TestApi;
beforeAll(async () => {
  t = await createTestApi({ MOCK_MODEL_ENABLED: 'true' });
});
afterAll(() => t.close());

describe('cross-tenant matrix', () => {
  it('every scoped procedure answers NOT_FOUND with another tenant’s ids', async () => {
    const owner = await t.signUp('Victim Owner');
    const intruder = await t.signUp('Intruder');
    const o = t.caller(owner.accessToken);
    const { id: projectId } = await o.projects.create({ name: 'Victim' });
    const conversation = await o.chat.conversations.create({ projectId });
    const sent = await o.chat.send({ conversationId: conversation.id, content: 'hello' });
    const { replyId } = sent;
    const agent = await o.agents.create({
      projectId,
      name: 'Victim Agent',
      instructions: 'x',
      model: 'mock-echo',
    });
    const ag = { agentId: agent.id };
    const rn = { runId: (await o.runs.start({ ...ag, input: 'hi' })).id };
    const { id: keyId } = (
      await o.apiKeys.create({ projectId, name: 'victim key', role: 'viewer' })
    ).key;
    const { id: limitId } = await o.budgets.setLimit({
      projectId,
      scope: 'project',
      period: 'month',
      amount: '5',
    });
    const [wallet] = await t.api.database.db
      .insert(wallets)
      .values({ userId: owner.user.id, address: `0x${'ab'.repeat(20)}`, chainId: 5042002 })
      .returning({ id: wallets.id });
    const walletId = wallet?.id ?? '';
    // A stored MCP server (no discovery needed to address it).
    const [server] = await t.api.database.db
      .insert(mcpServers)
      .values({ projectId, name: 'victim', url: 'https://mcp.example.com/mcp' })
      .returning({ id: mcpServers.id });
    const srv = { serverId: server?.id ?? '' };
    const upload = (pid: string, content: string) => {
      const fd = new FormData();
      fd.set('projectId', pid);
      fd.set('file', new Blob([content]), 'note.txt');
      return fd;
    };
    const { id: fileId } = await o.files.upload(upload(projectId, 'victim secret'));
    // The intruder is a real member elsewhere, so role checks are not what stops them.
    await t.caller(intruder.accessToken).projects.create({ name: 'Own' });

    const c = t.caller(intruder.accessToken);
    const p = { projectId };
    const conv = { conversationId: conversation.id };
    // The victim's own help conversation: only its starter may reach it.
    const helpConversation = await o.help.conversations.create();
    const { replyId: helpReplyId } = await o.help.send({
      conversationId: helpConversation.id,
      content: 'hello',
    });
    const help = { conversationId: helpConversation.id };
    const uid = owner.user.id;
    const notFound = (appCode: string) => ({ code: 'NOT_FOUND', appCode });
    const calls: Record<string, [() => Promise<unknown>, { code: string; appCode: string }]> = {
      'projects.get': [() => c.projects.get(p), notFound('projects.not_found')],
      'projects.update': [
        () => c.projects.update({ ...p, name: 'pwned' }),
        notFound('projects.not_found'),
      ],
      'projects.delete': [() => c.projects.delete(p), notFound('projects.not_found')],
      'projects.members.list': [() => c.projects.members.list(p), notFound('projects.not_found')],
      'audit.list': [() => c.audit.list(p), notFound('projects.not_found')],
      'agents.list': [() => c.agents.list(p), notFound('projects.not_found')],
      'agents.create': [
        () => c.agents.create({ ...p, name: 'Mole', instructions: 'x', model: 'mock-echo' }),
        notFound('projects.not_found'),
      ],
      'agents.get': [() => c.agents.get(ag), notFound('agents.not_found')],
      'agents.update': [
        () => c.agents.update({ ...ag, name: 'pwned' }),
        notFound('agents.not_found'),
      ],
      'agents.delete': [() => c.agents.delete(ag), notFound('agents.not_found')],
      'mcp.servers.list': [() => c.mcp.servers.list(p), notFound('projects.not_found')],
      'mcp.servers.create': [
        () => c.mcp.servers.create({ ...p, name: 'mole', url: 'https://mcp.example.com/mcp' }),
        notFound('projects.not_found'),
      ],
      'mcp.servers.update': [
        () => c.mcp.servers.update({ ...srv, name: 'pwned' }),
        notFound('mcp.not_found'),
      ],
      'mcp.servers.delete': [() => c.mcp.servers.delete(srv), notFound('mcp.not_found')],
      'mcp.servers.refresh': [() => c.mcp.servers.refresh(srv), notFound('mcp.not_found')],
      'runs.start': [() => c.runs.start({ ...ag, input: 'steal' }), notFound('agents.not_found')],
      'runs.get': [() => c.runs.get(rn), notFound('runs.not_found')],
      'runs.list': [() => c.runs.list(p), notFound('projects.not_found')],
      'runs.cancel': [() => c.runs.cancel(rn), notFound('runs.not_found')],
      'runs.approve': [
        () => c.runs.approve({ ...rn, approvalId: crypto.randomUUID() }),
        notFound('runs.not_found'),
      ],
      'runs.reject': [
        () => c.runs.reject({ ...rn, approvalId: crypto.randomUUID() }),
        notFound('runs.not_found'),
      ],
      'runs.onProgress': [
        async () => {
          const it = (await c.runs.onProgress(rn)) as AsyncIterable<unknown>;
          for await (const _ of it) break;
        },
        notFound('runs.not_found'),
      ],
      'apiKeys.create': [
        () => c.apiKeys.create({ ...p, name: 'stolen', role: 'viewer' }),
        notFound('projects.not_found'),
      ],
      'apiKeys.list': [() => c.apiKeys.list(p), notFound('projects.not_found')],
      'apiKeys.revoke': [() => c.apiKeys.revoke({ keyId }), notFound('apiKeys.not_found')],
      'budgets.get': [() => c.budgets.get(p), notFound('projects.not_found')],
      'budgets.setLimit': [
        () => c.budgets.setLimit({ ...p, scope: 'project', period: 'day', amount: '1' }),
        notFound('projects.not_found'),
      ],
      'budgets.removeLimit': [
        () => c.budgets.removeLimit({ limitId }),
        notFound('budget.limit_not_found'),
      ],
      'budgets.onAlert': [
        async () => {
          const it = (await c.budgets.onAlert(p)) as AsyncIterable<unknown>;
          for await (const _ of it) break;
        },
        notFound('projects.not_found'),
      ],
      'policies.get': [() => c.policies.get(p), notFound('projects.not_found')],
      'policies.update': [
        () => c.policies.update({ ...p, maxOutputTokens: 1 }),
        notFound('projects.not_found'),
      ],
      'usage.summary': [
        () =>
          c.usage.summary({
            ...p,
            from: '2026-01-01T00:00:00Z',
            to: '2026-02-01T00:00:00Z',
            groupBy: 'day',
          }),
        notFound('projects.not_found'),
      ],
      'usage.requests': [() => c.usage.requests(p), notFound('projects.not_found')],
      // Platform admins only: a signed-in non-admin is refused before any project lookup.
      'payments.credit': [
        () => c.payments.credit({ ...p, amount: '1', reason: 'free money' }),
        { code: 'FORBIDDEN', appCode: 'auth.admin_required' },
      ],
      'payments.confirmDeposit': [
        () => c.payments.confirmDeposit({ ...p, txHash: `0x${'ab'.repeat(32)}` }),
        notFound('projects.not_found'),
      ],
      'payments.list': [() => c.payments.list(p), notFound('projects.not_found')],
      'payments.assign': [
        () => c.payments.assign({ ...p, paymentId: crypto.randomUUID() }),
        { code: 'FORBIDDEN', appCode: 'auth.admin_required' },
      ],
      'wallets.link': [
        () => c.wallets.link({ message: 'x', signature: '0x00', projectId }),
        notFound('projects.not_found'),
      ],
      'wallets.unlink': [() => c.wallets.unlink({ walletId }), notFound('wallets.not_found')],
      'projects.members.add': [
        () => c.projects.members.add({ ...p, email: intruder.user.email, role: 'owner' }),
        notFound('projects.not_found'),
      ],
      'projects.members.updateRole': [
        () => c.projects.members.updateRole({ ...p, userId: uid, role: 'viewer' }),
        notFound('projects.not_found'),
      ],
      'projects.members.remove': [
        () => c.projects.members.remove({ ...p, userId: uid }),
        notFound('projects.not_found'),
      ],
      'chat.conversations.create': [
        () => c.chat.conversations.create(p),
        notFound('projects.not_found'),
      ],
      'chat.conversations.list': [
        () => c.chat.conversations.list(p),
        notFound('projects.not_found'),
      ],
      'chat.messages.list': [
        () => c.chat.messages.list(conv),
        notFound('chat.conversation_not_found'),
      ],
      'chat.send': [
        () => c.chat.send({ ...conv, content: 'injected' }),
        notFound('chat.conversation_not_found'),
      ],
      'chat.cancel': [() => c.chat.cancel({ replyId }), notFound('chat.reply_not_found')],
      'chat.conversations.get': [
        () => c.chat.conversations.get(conv),
        notFound('chat.conversation_not_found'),
      ],
      'chat.conversations.update': [
        () => c.chat.conversations.update({ ...conv, title: 'pwned' }),
        notFound('chat.conversation_not_found'),
      ],
      'chat.conversations.delete': [
        () => c.chat.conversations.delete(conv),
        notFound('chat.conversation_not_found'),
      ],
      'chat.regenerate': [() => c.chat.regenerate(conv), notFound('chat.conversation_not_found')],
      'chat.edit': [
        () => c.chat.edit({ messageId: sent.message.id, content: 'injected' }),
        notFound('chat.message_not_found'),
      ],
      // Help conversations are their starter's alone: another user's is not found.
      'help.messages': [() => c.help.messages(help), notFound('help.conversation_not_found')],
      'help.send': [
        () => c.help.send({ ...help, content: 'injected' }),
        notFound('help.conversation_not_found'),
      ],
      'help.cancel': [
        () => c.help.cancel({ replyId: helpReplyId }),
        notFound('help.reply_not_found'),
      ],
      'help.onEvent': [
        async () => {
          const it = (await c.help.onEvent(help)) as AsyncIterable<unknown>;
          for await (const _ of it) break;
        },
        notFound('help.conversation_not_found'),
      ],
      'files.upload': [
        () => c.files.upload(upload(projectId, 'planted')),
        notFound('projects.not_found'),
      ],
      'files.list': [() => c.files.list(p), notFound('projects.not_found')],
      'files.delete': [() => c.files.delete({ fileId }), notFound('files.not_found')],
      'chat.onEvent': [
        async () => {
          const it = (await c.chat.onEvent(conv)) as AsyncIterable<unknown>;
          for await (const _ of it) break;
        },
        notFound('chat.conversation_not_found'),
      ],
    };
    expect(Object.keys(calls).sort()).toEqual(scopedPaths());

    for (const [path, [call, expected]] of Object.entries(calls)) {
      expect({ path, ...(await failure(call())) }).toEqual({ path, ...expected });
    }
    // The same answers as for ids that do not exist at all.
    const ghost = crypto.randomUUID();
    expect(await failure(c.projects.get({ projectId: ghost }))).toEqual(
      notFound('projects.not_found'),
    );
    expect(await failure(c.chat.messages.list({ conversationId: ghost }))).toEqual(
      notFound('chat.conversation_not_found'),
    );
    expect(await failure(c.chat.cancel({ replyId: ghost }))).toEqual(
      notFound('chat.reply_not_found'),
    );
    expect(await failure(c.chat.edit({ messageId: ghost, content: 'x' }))).toEqual(
      notFound('chat.message_not_found'),
    );

    // Nothing changed on the victim's side.
    expect((await o.projects.get(p)).name).toBe('Victim');
    expect((await o.budgets.get(p)).limits.map((l) => l.amount)).toEqual(['5.000000']);
    expect((await o.policies.get(p)).maxOutputTokens).toBeNull();
    expect((await o.wallets.list()).map((w) => w.id)).toEqual([walletId]);
    expect((await o.files.list(p)).items.map((f) => f.id)).toEqual([fileId]);
    expect((await o.chat.conversations.get(conv)).title).toBeNull();
    const msgs = await o.chat.messages.list(conv);
    expect(msgs.items.some((m) => m.content === 'injected')).toBe(false);
    expect(msgs.items.map((m) => m.id)).toEqual([sent.message.id, replyId]);
  });
});

describe('project checks come before the input', () => {
  it('a non-member learns nothing of the input rules; a malformed project id reaches no handler', async () => {
    const owner = await t.signUp('Rules Owner');
    const stranger = await t.signUp('Rules Stranger');
    const o = t.caller(owner.accessToken);
    const s = t.caller(stranger.accessToken);
    const { id: projectId } = await o.projects.create({ name: 'Rules' });
    await o.projects.members.add({ projectId, email: stranger.user.email, role: 'viewer' });
    const tooLong = 'x'.repeat(10_000);
    // A member below the role: refused for the role, whatever else the input holds.
    expect(await failure(s.projects.update({ projectId, name: tooLong }))).toMatchObject({
      code: 'FORBIDDEN',
      appCode: 'projects.role_insufficient',
    });
    await o.projects.members.remove({ projectId, userId: stranger.user.id });
    // No longer a member: NOT_FOUND, as for a project that does not exist, not the rule.
    expect(await failure(s.projects.update({ projectId, name: tooLong }))).toEqual(
      await failure(s.projects.update({ projectId: crypto.randomUUID(), name: tooLong })),
    );
    expect(await failure(s.projects.update({ projectId, name: tooLong }))).toMatchObject({
      code: 'NOT_FOUND',
      appCode: 'projects.not_found',
    });
    // The member with the role gets the input's own error.
    expect(await failure(o.projects.update({ projectId, name: tooLong }))).toMatchObject({
      code: 'BAD_REQUEST',
    });
    // Not a project id at all: refused as input, and nothing ran.
    expect(await failure(o.projects.update({ projectId: 'nope', name: 'Renamed' }))).toMatchObject({
      code: 'BAD_REQUEST',
    });
    expect((await o.projects.get({ projectId })).name).toBe('Rules');
  });
});
