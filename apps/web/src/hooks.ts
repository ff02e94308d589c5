import type { RouterOutputs, Session } from '@smartspace/client';
import { useQuery } from '@tanstack/react-query';
import { useSyncExternalStore } from 'react';
import { useParams } from 'react-router';
import { SESSION_KEY, sessionStore } from './session';
import { useTRPC } from './trpc';

// Parsed once per raw value, so React sees a stable snapshot between changes.
let lastRaw: string | null = null;
let lastSession: Session | null = null;
function snapshot(): Session | null {
  const raw = localStorage.getItem(SESSION_KEY);
  if (raw !== lastRaw) {
    lastRaw = raw;
    lastSession = sessionStore.current();
  }
  return lastSession;
}

export function useSession(): Session | null {
  return useSyncExternalStore(sessionStore.subscribe, snapshot);
}

export type ProjectRole = 'viewer' | 'member' | 'admin' | 'owner';
const RANK: Record<ProjectRole, number> = { viewer: 0, member: 1, admin: 2, owner: 3 };

export function roleAtLeast(role: ProjectRole | undefined, min: ProjectRole): boolean {
  return role !== undefined && RANK[role] >= RANK[min];
}

export type ProjectWithRole = RouterOutputs['projects']['list']['items'][number];

/** The projects the user belongs to, with their role in each. */
export function useProjects() {
  const trpc = useTRPC();
  return useQuery(trpc.projects.list.queryOptions({ limit: 100 }));
}

/** The project in the URL and the user's role in it. */
export function useCurrentProject(): {
  projectId: string;
  project: ProjectWithRole | undefined;
  role: ProjectRole | undefined;
  /** The projects are loaded and this one is not among them (deleted, or access removed). */
  missing: boolean;
} {
  const { projectId = '' } = useParams();
  const projects = useProjects();
  const project = projects.data?.items.find((p) => p.id === projectId);
  return {
    projectId,
    project,
    role: project?.myRole,
    missing: projectId !== '' && !!projects.data && !project,
  };
}
