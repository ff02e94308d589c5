import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../db/client';
import { createTestApi, type TestApi } from '../../testing';

let t: TestApi;
beforeAll(async () => {
  t = await createTestApi();
});
afterAll(() => t.close());

async function limitRows(projectId: string) {
  return rowsOf<{ id: string; scope: string; amount: string }>(
    await t.api.database.db.execute(
      sql`select id, scope, amount::text from budget_limits where project_id = ${projectId}`,
    ),
  );
}

describe('budgets.setLimit', () => {
  it('10 concurrent sets of one limit leave one row; every call answers it', async () => {
    const owner = await t.signUp('Budget Owner');
    const c = t.caller(owner.accessToken);
    const { id: projectId } = await c.projects.create({ name: 'Limits' });
    const set = (i: number, scope: 'project' | 'member') =>
      c.budgets.setLimit({
        projectId,
        scope,
        ...(scope === 'member' ? { scopeId: owner.user.id } : {}),
        period: 'month',
        amount: String(i + 1),
        alertAt: [0.5],
      });
    for (const scope of ['project', 'member'] as const) {
      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => set(i, scope)));
      expect(new Set(answers.map((a) => a.id)).size).toBe(1);
      const rows = (await limitRows(projectId)).filter((r) => r.scope === scope);
      expect(rows.map((r) => r.id)).toEqual([answers[0]?.id]);
      // The last writer wins; whichever it was, it is one of the amounts set.
      expect(answers.map((a) => a.amount)).toContain(
        (await c.budgets.get({ projectId })).limits.find((l) => l.scope === scope)?.amount,
      );
    }
    // Setting it again later replaces the amount in place.
    const again = await set(41, 'project');
    expect(again).toMatchObject({ scope: 'project', scopeId: null, amount: '42.000000' });
    expect(await limitRows(projectId)).toHaveLength(2);
  });
});
