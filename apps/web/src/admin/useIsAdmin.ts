import { useQuery } from '@tanstack/react-query';
import { useSession } from '../hooks';
import { useTRPC } from '../trpc';

/**
 * Whether the signed-in user is a platform admin: the server's answer (`users.me`), so a role
 * changed since sign-in counts; the saved session's role until it arrives.
 */
export function useIsAdmin(): { isAdmin: boolean; known: boolean } {
  const session = useSession();
  const trpc = useTRPC();
  const me = useQuery({ ...trpc.users.me.queryOptions(), enabled: session !== null });
  const role = me.data?.role ?? session?.user.role;
  return { isAdmin: role === 'admin', known: me.data !== undefined || me.isError };
}
