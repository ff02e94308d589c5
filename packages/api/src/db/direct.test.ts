import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projects } from '../modules/projects/projects.table';
import { users } from '../modules/users/users.table';
import { createTestDatabase, type TestDatabase } from '../testing';
import { directSelect } from './direct';

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());

describe('directSelect', () => {
  it('answers the rows drizzle would, decoded the same (dates, enums, nulls)', async () => {
    const { db } = database;
    const [user] = await db
      .insert(users)
      .values({ email: `direct.${Date.now()}@example.com`, name: 'Direct', passwordHash: 'x' })
      .returning();
    const [project] = await db
      .insert(projects)
      .values({ name: 'Direct', description: null })
      .returning();
    if (!user || !project) throw new Error('no rows');
    const selection = {
      id: users.id,
      role: users.role,
      createdAt: users.createdAt,
      projectDescription: projects.description,
      projectUpdatedAt: projects.updatedAt,
    };
    const query = db
      .select(selection)
      .from(users)
      .leftJoin(projects, eq(projects.id, sql.placeholder('projectId')))
      .where(eq(users.id, sql.placeholder('userId')));
    const direct = directSelect(db, query, 'direct_test', Object.values(selection), (v) => ({
      id: v[0],
      role: v[1],
      createdAt: v[2],
      projectDescription: v[3],
      projectUpdatedAt: v[4],
    }));
    const values = { userId: user.id, projectId: project.id };
    const expected = await query.execute(values);
    expect(await direct.execute(values)).toEqual(expected);
    expect(expected).toEqual([
      {
        id: user.id,
        role: 'user',
        createdAt: user.createdAt,
        projectDescription: null,
        projectUpdatedAt: project.updatedAt,
      },
    ]);
    expect(await direct.execute({ userId: crypto.randomUUID(), projectId: project.id })).toEqual(
      [],
    );
  });
});
