import { defineConfig } from 'tsup';

// The client (and the tRPC client code it uses) is bundled in, so the packed CLI needs
// only its own runtime dependencies and runs outside the workspace.
export default defineConfig({
  entry: { cli: 'src/cli.ts' },
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  clean: true,
  noExternal: ['@smartspace/client', '@trpc/client', '@trpc/server'],
  banner: { js: '#!/usr/bin/env node' },
});
