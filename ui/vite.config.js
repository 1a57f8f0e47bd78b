import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The page is served at `/` of the same origin as the API (`/api/...`).
// `npm run dev` proxies /api to the local stack's app server (API_ORIGIN to override).
export default defineConfig({
  base: '/',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
  },
  server: {
    proxy: {
      '/api': process.env.API_ORIGIN || 'http://127.0.0.1:3000',
    },
  },
  test: {
    environment: 'jsdom',
    setupFiles: ['./src/test/setup.js'],
    include: ['src/**/*.test.{js,jsx}'],
    restoreMocks: true,
    unstubGlobals: true,
  },
});
