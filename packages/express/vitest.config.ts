import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { defineConfig, mergeConfig } from 'vitest/config';
import { keyfobVitestConfig } from '../../vitest.shared.ts';

const require = createRequire(import.meta.url);
const authorizationServer = fileURLToPath(
  new URL('../../apps/authorization-server/src/index.ts', import.meta.url),
);

const base = mergeConfig(
  keyfobVitestConfig({ testTimeout: 30_000 }),
  defineConfig({ resolve: { alias: { '@keyfob/authorization-server': authorizationServer } } }),
);

export default mergeConfig(
  base,
  defineConfig({
    test: {
      projects: [
        {
          extends: true,
          test: { name: 'express5', exclude: ['test/express4/**'] },
        },
        {
          // The same source, with `express` resolved to Express 4 (installed as `express4`): the peer range's low end.
          extends: true,
          resolve: { alias: { express: require.resolve('express4') } },
          test: { name: 'express4', exclude: ['test/*.test.ts'] },
        },
      ],
    },
  }),
);
