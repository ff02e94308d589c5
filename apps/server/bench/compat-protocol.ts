/**
 * What the compat bench's processes tell each other: kept apart from compat-server.ts so that
 * importing it does not start a server.
 */

/** The Claude model both sides ask for; the upstream stand-in answers any. */
export const COMPAT_MODEL = 'claude-haiku-4-5';

export interface CompatServerReady {
  type: 'ready';
  port: number;
  /** A key on a project with a budget limit (that never denies in a run). */
  limitedSecret: string;
  /** A key on a project without limits: the gateway meters only. */
  meteredSecret: string;
  database: string;
}

export interface CompatBooks {
  type: 'books';
  /** api_requests rows of both projects by status. */
  statuses: Record<string, number>;
  /** Still held on api_requests rows and on budget usage, both projects, micro-USDC. */
  reserved: string;
}
