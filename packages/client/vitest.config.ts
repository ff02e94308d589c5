import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // The pack test builds, installs and compiles a project, then starts a server.
    testTimeout: 120_000,
    hookTimeout: 600_000,
    pool: 'forks',
  },
});
