import { int, setting } from '../../lib/settings';

export const runsConfig = {
  runs: {
    maxConcurrentPerProject: setting({
      env: 'RUNS_MAX_CONCURRENT_PER_PROJECT',
      schema: int(1, 1000),
      default: '4',
      doc: 'agent runs executing at once per project (across instances); more wait queued',
    }),
    maxOutputTokens: setting({
      env: 'RUN_MAX_OUTPUT_TOKENS',
      schema: int(1, 128_000),
      default: '4096',
      doc: 'output tokens per model step of a run (a project policy may lower it)',
    }),
  },
};
