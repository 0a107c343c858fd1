import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

// Workspace packages resolve to their TypeScript sources in tests, so tests never depend on a
// stale build. Runtime (CLIs, benches, the demo) uses each package's compiled dist/.
const root = dirname(fileURLToPath(import.meta.url));
const pkg = (dir: string) => resolve(root, dir, 'src/index.ts');

export default defineConfig({
  // swc keeps decorator metadata, which NestJS dependency injection needs.
  plugins: [swc.vite({ module: { type: 'es6' } })],
  resolve: {
    alias: [
      // Subpath entry points (e.g. '@fedsynth/diffusion/weights', free of tfjs) map to src/<name>.ts.
      {
        find: /^@fedsynth\/(secure-agg|imaging|diffusion|protocol|cli-kit)\/([\w-]+)$/,
        replacement: resolve(root, 'libs/$1/src/$2.ts'),
      },
      { find: /^@fedsynth\/cli-kit$/, replacement: pkg('libs/cli-kit') },
      { find: /^@fedsynth\/secure-agg$/, replacement: pkg('libs/secure-agg') },
      { find: /^@fedsynth\/imaging$/, replacement: pkg('libs/imaging') },
      { find: /^@fedsynth\/diffusion$/, replacement: pkg('libs/diffusion') },
      { find: /^@fedsynth\/protocol$/, replacement: pkg('libs/protocol') },
      { find: /^@fedsynth\/coordinator$/, replacement: pkg('apps/coordinator') },
      { find: /^@fedsynth\/site-agent$/, replacement: pkg('apps/site-agent') },
    ],
  },
  test: {
    include: ['libs/*/src/**/*.test.ts', 'apps/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    // Starts the suite's own PostgreSQL and Redis (FEDSYNTH_TEST_PG, FEDSYNTH_TEST_REDIS).
    globalSetup: ['test/services/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
