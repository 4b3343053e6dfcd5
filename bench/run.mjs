// `pnpm bench`: runs every benchmark scenario and prints the figures (also written to bench/results.md).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('./all.ts', import.meta.url));
const r = spawnSync(process.execPath, ['--import', 'tsx', '--expose-gc', entry, ...process.argv.slice(2)], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
