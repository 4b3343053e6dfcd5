import { fileURLToPath } from 'node:url';
import { mergeConfig } from 'vitest/config';
import { keyfobVitestConfig } from '../../vitest.shared.ts';

// The Node matrix (scripts/node-matrix.sh) runs these tests again on the newest got, which needs
// Node 22+: KEYFOB_GOT_ENTRY points at that got's entry file.
const entry = process.env.KEYFOB_GOT_ENTRY;
export default entry
  ? mergeConfig(keyfobVitestConfig(), {
      resolve: { alias: { got: entry.startsWith('file:') ? fileURLToPath(entry) : entry } },
    })
  : keyfobVitestConfig();
