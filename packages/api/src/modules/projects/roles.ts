import type { ProjectRole } from './projects.table';

export type { ProjectRole };

const rank: Record<ProjectRole, number> = { viewer: 0, member: 1, admin: 2, owner: 3 };

export function roleAtLeast(role: ProjectRole, min: ProjectRole): boolean {
  return rank[role] >= rank[min];
}
