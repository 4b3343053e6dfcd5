import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const pkg = (name: string) => fileURLToPath(new URL(`./packages/${name}/src/index.ts`, import.meta.url));

/**
 * Tests resolve sibling packages to their TypeScript source, so `pnpm test` needs no build.
 * The published packages are checked separately by `test:build` (publint + attw on the pack).
 */
export const keyfobAliases = {
  '@keyfob/core': pkg('core'),
  '@keyfob/axios': pkg('axios'),
  '@keyfob/got': pkg('got'),
  '@keyfob/nestjs': pkg('nestjs'),
  '@keyfob/express': pkg('express'),
  '@keyfob/redis': pkg('redis'),
  '@keyfob/fetch': pkg('fetch'),
  '@keyfob/opentelemetry': pkg('opentelemetry'),
  '@keyfob/cli': pkg('cli'),
  '@keyfob/testing': pkg('testing'),
};

export function keyfobVitestConfig(extra: { testTimeout?: number } = {}) {
  return defineConfig({
    resolve: { alias: keyfobAliases },
    test: {
      include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
      testTimeout: extra.testTimeout ?? 20_000,
      hookTimeout: 30_000,
      pool: 'forks',
    },
  });
}
