// `pnpm bench`: builds the packages, then runs every benchmark scenario against the builds (what users
// install, not the TypeScript sources) and prints the figures (also written to bench/results.md).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const build = spawnSync(
  'pnpm',
  ['exec', 'turbo', 'run', 'build', '--filter=./packages/*', '--output-logs=errors-only'],
  { cwd: root, stdio: 'inherit' },
);
if (build.status !== 0) process.exit(build.status ?? 1);
const entry = fileURLToPath(new URL('./all.ts', import.meta.url));
// bench/tsconfig.json has no `paths`: the packages' own imports of @keyfob/* then resolve to the builds
// too (tsx applies the root tsconfig's `paths`, which point at the sources, at run time).
const r = spawnSync(process.execPath, ['--import', 'tsx', '--expose-gc', entry, ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, TSX_TSCONFIG_PATH: fileURLToPath(new URL('./tsconfig.json', import.meta.url)) },
});
process.exit(r.status ?? 1);
