import type { User } from '../users/users.dto';

export interface Session {
  user: User;
  accessToken: string;
  refreshToken: string;
  accessTokenExpiresAt: string;
}
