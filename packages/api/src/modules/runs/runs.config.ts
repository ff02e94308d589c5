import { z } from 'zod';
import { int, setting } from '../../lib/settings';

export const runsConfig = {
  runs: {
    maxConcurrentPerProject: setting({
      env: 'RUNS_MAX_CONCURRENT_PER_PROJECT',
      schema: int(1, 1000),
      default: '4',
      doc: 'agent runs executing at once per project (across instances); more wait queued',
    }),
    approvalTimeoutMinutes: setting({
      env: 'RUN_APPROVAL_TIMEOUT_MINUTES',
      schema: int(1, 60 * 24 * 30),
      default: '1440',
      doc: 'how long a run waits for a person to approve a step before it fails run.approval_expired',
    }),
    approverRole: setting({
      env: 'RUN_APPROVER_ROLE',
      schema: z.enum(['member', 'admin', 'owner']),
      default: 'admin',
      doc: 'the lowest project role that may approve or reject a waiting step of a run',
    }),
    maxOutputTokens: setting({
      env: 'RUN_MAX_OUTPUT_TOKENS',
      schema: int(1, 128_000),
      default: '4096',
      doc: 'output tokens per model step of a run (a project policy may lower it)',
    }),
  },
};
