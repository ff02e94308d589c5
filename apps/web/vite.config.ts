import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// `pnpm dev` runs the API on API_PORT (3000) and this dev server in front of it.
const api = `http://127.0.0.1:${process.env.API_PORT ?? '3000'}`;

export default defineConfig({
  plugins: [react()],
  // One bundle (React, the client, Markdown and the highlighter's common languages).
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 1000 },
  server: {
    port: 5173,
    proxy: {
      '/trpc': {
        target: api,
        ws: true,
        // The API refuses WebSocket handshakes from browser origins it does not know. A
        // handshake from this dev server's own pages goes on as a same-machine client (no
        // Origin); any other origin is passed through for the API to judge.
        configure: (proxy) => {
          proxy.on('proxyReqWs', (proxyReq, req) => {
            const origin = req.headers.origin;
            if (origin && new URL(origin).host === req.headers.host)
              proxyReq.removeHeader('origin');
          });
        },
      },
      '/files': api,
      '/docs': api,
    },
  },
});
