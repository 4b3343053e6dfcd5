import { defineConfig } from 'vitest/config';

// `pnpm vitest run` at the root runs every package's tests (each with its own vitest.config.ts);
// `pnpm test` runs them package by package through turbo, with lint, type-checks and package checks.
export default defineConfig({
  test: {
    projects: ['packages/*/vitest.config.ts', 'apps/*/vitest.config.ts'],
  },
});
