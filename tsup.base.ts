import { defineConfig, type Options } from 'tsup';

/** One build config for every package: ESM + CJS with types, Node 20 target. */
export function keyfobTsup(overrides: Options = {}) {
  return defineConfig({
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    platform: 'node',
    treeshake: true,
    tsconfig: 'tsconfig.build.json',
    ...overrides,
  });
}
