import { fileURLToPath } from 'node:url';
import { defineConfig, mergeConfig } from 'vitest/config';
import { keyfobVitestConfig } from '../../vitest.shared.ts';

export default mergeConfig(
  keyfobVitestConfig({ testTimeout: 30_000 }),
  defineConfig({
    resolve: {
      alias: {
        '@keyfob/authorization-server': fileURLToPath(
          new URL('../../apps/authorization-server/src/index.ts', import.meta.url),
        ),
      },
    },
  }),
);
