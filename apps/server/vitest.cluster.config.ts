import { defineConfig } from 'vitest/config';

/** `pnpm test:cluster`: the deployment test (cluster/), apart from `pnpm test`. */
export default defineConfig({
  test: {
    include: ['cluster/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 180_000,
    pool: 'forks',
  },
});
