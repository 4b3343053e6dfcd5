// Until the full demo lands, `pnpm demo` runs the core example against a local token endpoint.
import { spawnSync } from 'node:child_process';

const r = spawnSync('pnpm', ['--filter', '@keyfob/core', 'example'], { stdio: 'inherit' });
process.exit(r.status ?? 1);
